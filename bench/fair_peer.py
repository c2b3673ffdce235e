"""Benchmark: the connector's initial sync close to Spotler's rate limit, against a fair peer and the bound.

Both sandboxes add ``--latency-ms`` (default 50) to every API call; the
Spotler sandbox answers 429 + Retry-After above ``--rate`` requests per second
(default: SPOTLER_RATE_PER_S's default, 5) and both sides are told the same
rate. In one run, on the same AFAS sandbox (``--contacts`` rows):

(a) the connector: an initial sync from an empty link by a producer and
    ``--workers`` spotler workers (``--threads`` each) as OS processes
    (``bench/initial_sync.py``; wall time from starting the producer);
(b) the fair peer, ``bench/sequential_peer.py``, as its own process on a reset
    Spotler sandbox with the same faults: reads by key, full batches of 100,
    one request at a time at the same rate;
(c) the bound the rate sets: the valid contacts ÷ (100 x rate), the time the
    writes alone need at the rate with every batch full.

Prints one table and one ``FAIR_PEER {json}`` line. Targets: the connector
within 1.3x of the bound and faster than the peer. Asserts nothing about time.

    python bench/fair_peer.py [--contacts 100000] [--latency-ms 50] [--rate 5] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import redis

from common import flush_connector_keys, machine, open_stack, print_table, set_faults, valid_contact_ids
from connector.settings import ENV_VARS
from connector.stack import Stack
from initial_sync import Faults, SyncRun, spotler_ids, sync_once
from sequential_peer import PeerResult

PEER = Path(__file__).with_name("sequential_peer.py")
DEFAULT_RATE = float(ENV_VARS["SPOTLER_RATE_PER_S"][0] or 5)


class PeerRun(msgspec.Struct, kw_only=True):
    wall_s: float
    spotler_calls: int
    spotler_429: int
    spotler_writes: int
    afas_calls: int
    in_spotler: int
    correct: bool
    detail: PeerResult


class Figures(msgspec.Struct, kw_only=True):
    contacts: int
    valid: int
    latency_ms: float
    rate_per_s: float
    bound_s: float
    connector: SyncRun
    peer: PeerRun
    connector_vs_bound: float
    peer_vs_connector: float
    within_1_3x_of_bound: bool
    faster_than_peer: bool


def run_peer(stack: Stack, client: redis.Redis, valid: set[str], args: argparse.Namespace) -> PeerRun:
    """(b): the peer as its own process on a reset Spotler sandbox with the same faults."""
    flush_connector_keys(client)
    stack.spotler("POST", "reset")
    set_faults(stack, "afas", latency_ms=args.latency_ms)
    set_faults(stack, "spotler", latency_ms=args.latency_ms, rate_per_s=args.rate)
    stack.spotler("DELETE", "requests")
    stack.afas("DELETE", "requests")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PEER), "--json", "--take", str(args.take)],
                          env=stack.env(SPOTLER_RATE_PER_S=f"{args.rate:g}"), capture_output=True,
                          timeout=args.timeout, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"sequential peer failed:\n{done.stderr.decode()[-2000:]}")
    detail = msgspec.json.decode(done.stdout.strip().splitlines()[-1], type=PeerResult)
    spotler = stack.spotler("GET", "requests")
    afas_calls = int(stack.afas("GET", "requests")["total"])
    ids = spotler_ids(stack)
    return PeerRun(wall_s=wall, spotler_calls=int(spotler["total"]), spotler_429=int(spotler["statuses"].get("429", 0)),
                   spotler_writes=int(spotler["routes"].get("POST /contact/list", 0)), afas_calls=afas_calls,
                   in_spotler=len(ids), correct=ids == valid, detail=detail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added to every call on both sandboxes")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help="Spotler requests/s (sandbox, connector, peer)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--take", type=int, default=1000, help="the peer's GetConnector page size")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="POLL_INTERVAL_S (production's default)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()

    print(machine())
    with open_stack(args.contacts, seed=args.seed, env={"POLL_INTERVAL_S": f"{args.poll_interval:g}"}) as stack:
        stack.start_sandboxes()
        valid, invalid = valid_contact_ids(stack)
        client = redis.Redis.from_url(stack.redis_url)
        print(f"{args.contacts:,} AFAS rows ({len(valid):,} valid, {invalid:,} invalid) · latency "
              f"{args.latency_ms:g} ms per call on both sandboxes · Spotler {args.rate:g} requests/s (429 above) · "
              f"connector {args.workers} workers x {args.threads} threads · peer pages of {args.take}")
        faults = Faults(afas_latency_ms=args.latency_ms, spotler_latency_ms=args.latency_ms,
                        spotler_rate_per_s=args.rate)
        connector = sync_once(stack, client, valid, workers=args.workers, threads=args.threads,
                              rate_per_s=args.rate, faults=faults, timeout_s=args.timeout)
        print(f"  connector: {connector.wall_s:.1f} s", flush=True)
        peer = run_peer(stack, client, valid, args)
        print(f"  peer: {peer.wall_s:.1f} s", flush=True)

    bound = len(valid) / (100 * args.rate)
    figures = Figures(
        contacts=args.contacts, valid=len(valid), latency_ms=args.latency_ms, rate_per_s=args.rate, bound_s=bound,
        connector=connector, peer=peer, connector_vs_bound=connector.wall_s / bound,
        peer_vs_connector=peer.wall_s / connector.wall_s,
        within_1_3x_of_bound=connector.wall_s <= 1.3 * bound, faster_than_peer=connector.wall_s < peer.wall_s,
    )
    print_table(
        f"initial sync of {len(valid):,} valid contacts at {args.rate:g} Spotler requests/s",
        ["", "connector", "sequential peer", "bound"],
        [
            ("wall time (s)", f"{connector.wall_s:.1f}", f"{peer.wall_s:.1f}", f"{bound:.1f}"),
            ("  / bound", f"{connector.wall_s / bound:.2f}x", f"{peer.wall_s / bound:.2f}x", "1.00x"),
            ("contacts/s", f"{connector.contacts_per_s:,.0f}", f"{len(valid) / peer.wall_s:,.0f}",
             f"{100 * args.rate:,.0f}"),
            ("Spotler calls", connector.spotler_calls, peer.spotler_calls, ""),
            ("  POST contact/list", connector.spotler_writes, peer.spotler_writes, f"{-(-len(valid) // 100)}"),
            ("  of which 429", connector.spotler_429, peer.spotler_429, ""),
            ("AFAS calls", connector.afas_calls, peer.afas_calls, ""),
            ("contacts in Spotler", connector.in_spotler, peer.in_spotler, ""),
            ("= the valid AFAS rows", "yes" if connector.correct else "NO", "yes" if peer.correct else "NO", ""),
        ],
    )
    d = peer.detail
    print(f"  connector: first poll (read every row, enqueue every batch) {connector.first_poll_s:.1f} s")
    print(f"  peer: {d.batches} batches, {d.written} written, {d.refused} refused, {d.failed} failed, "
          f"{d.rate_limited} x 429 slept, {d.retried} retried, {d.waited_s:.1f} s spent keeping the rate")
    print("\ntargets: "
          f"within 1.3x of the bound: {'met' if figures.within_1_3x_of_bound else 'MISSED'} "
          f"({figures.connector_vs_bound:.2f}x) · faster than the peer: "
          f"{'met' if figures.faster_than_peer else 'MISSED'} (peer / connector {figures.peer_vs_connector:.2f}x)")
    print("\nFAIR_PEER " + msgspec.json.encode(figures).decode())


if __name__ == "__main__":
    main()
