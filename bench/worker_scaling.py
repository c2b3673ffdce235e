"""Benchmark: what more Spotler worker processes buy in an initial AFAS → Spotler sync, in one run.

The Spotler sandbox adds ``--latency-ms`` (default 200: a far-away API) to
every call. For each worker count in ``--workers`` (default 1,2,4,8
processes, ``--threads`` each) an initial sync of the AFAS sandbox's
``--contacts`` runs from an empty link (``bench/initial_sync.py``), twice:

- **no rate cap**: the sandbox does not limit and the workers are told
  ``SPOTLER_RATE_PER_S=--uncapped-rate`` (default 10000, far above what is reached);
- **the default cap**: ``SPOTLER_RATE_PER_S`` at its default (5/s) and the
  sandbox answering 429 + Retry-After above the same rate.

One table per cap: wall time, contacts/s, Spotler calls and 429s, the
producer's first poll, and whether Spotler holds exactly the valid contacts;
then one ``SCALING {json}`` line with every run. Asserts nothing about time.

    python bench/worker_scaling.py [--contacts 100000] [--workers 1,2,4,8] [--threads 4] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import time

import msgspec
import redis

from common import machine, open_stack, print_table, valid_contact_ids
from connector.settings import ENV_VARS
from initial_sync import Faults, SyncRun, sync_once

DEFAULT_RATE = float(ENV_VARS["SPOTLER_RATE_PER_S"][0] or 5)


class Figures(msgspec.Struct, kw_only=True):
    contacts: int  # AFAS rows
    valid: int
    latency_ms: float
    threads: int
    uncapped: list[SyncRun]
    capped: list[SyncRun]
    seed_s: float


def table(title: str, runs: list[SyncRun]) -> None:
    base = runs[0].contacts_per_s if runs else 0.0
    print_table(title, [
        "workers x threads", "wall s", "contacts/s", "vs 1 worker", "Spotler calls", "429s",
        "POST contact/list", "first poll s", "all in Spotler",
    ], [
        (f"{r.workers} x {r.threads}", f"{r.wall_s:.1f}", f"{r.contacts_per_s:,.0f}",
         f"{r.contacts_per_s / base:.2f}x" if base else "", r.spotler_calls, r.spotler_429, r.spotler_writes,
         f"{r.first_poll_s:.1f}", "yes" if r.correct else "NO")
        for r in runs
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2,4,8", help="worker process counts, comma-separated")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="added to every Spotler call")
    parser.add_argument("--uncapped-rate", type=float, default=10_000.0, help="SPOTLER_RATE_PER_S with no cap")
    parser.add_argument("--capped-rate", type=float, default=DEFAULT_RATE,
                        help="SPOTLER_RATE_PER_S and the sandbox's limit for the capped runs (default: the default)")
    parser.add_argument("--caps", default="none,default", help="which runs: none, default or both")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="POLL_INTERVAL_S (production's default)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    caps = {c.strip() for c in args.caps.split(",")}

    print(machine())
    began = time.perf_counter()
    with open_stack(args.contacts, seed=args.seed, env={"POLL_INTERVAL_S": f"{args.poll_interval:g}"}) as stack:
        stack.start_sandboxes()
        valid, invalid = valid_contact_ids(stack)  # also warms the sandbox's rows and order
        seed_s = time.perf_counter() - began
        client = redis.Redis.from_url(stack.redis_url)
        print(f"{args.contacts:,} AFAS rows ({len(valid):,} valid, {invalid:,} invalid), sandboxes up and rows "
              f"read once in {seed_s:.1f} s · Spotler latency {args.latency_ms:g} ms per call, AFAS none · "
              f"{args.threads} threads per worker · POLL_INTERVAL_S={args.poll_interval:g}")
        figures = Figures(contacts=args.contacts, valid=len(valid), latency_ms=args.latency_ms,
                          threads=args.threads, uncapped=[], capped=[], seed_s=seed_s)
        plans = []
        if "none" in caps:
            plans.append((figures.uncapped, args.uncapped_rate, Faults(spotler_latency_ms=args.latency_ms)))
        if "default" in caps:
            plans.append((figures.capped, args.capped_rate,
                          Faults(spotler_latency_ms=args.latency_ms, spotler_rate_per_s=args.capped_rate)))
        for runs, rate, faults in plans:
            for count in counts:
                run = sync_once(stack, client, valid, workers=count, threads=args.threads, rate_per_s=rate,
                                faults=faults, timeout_s=args.timeout)
                print(f"  {count} worker(s), SPOTLER_RATE_PER_S={rate:g}, sandbox limit "
                      f"{faults.spotler_rate_per_s or 'none'}: {run.wall_s:.1f} s, {run.contacts_per_s:,.0f} "
                      f"contacts/s, {run.spotler_429} x 429", flush=True)
                runs.append(run)
    if figures.uncapped:
        table(f"no rate cap (SPOTLER_RATE_PER_S={args.uncapped_rate:g}, sandbox unlimited)", figures.uncapped)
    if figures.capped:
        bound = len(valid) / (100 * args.capped_rate)
        table(f"default rate cap (SPOTLER_RATE_PER_S={args.capped_rate:g}, sandbox 429 above "
              f"{args.capped_rate:g}/s; bound {len(valid):,} / (100 x {args.capped_rate:g}) = {bound:.1f} s, "
              f"{100 * args.capped_rate:,.0f} contacts/s)", figures.capped)
    print("\nSCALING " + msgspec.json.encode(figures).decode())


if __name__ == "__main__":
    main()
