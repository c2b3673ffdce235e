"""Benchmark: an initial AFAS → Spotler sync, the connector against a naive script, in one run.

Both sandboxes add ``--latency-ms`` to every API request and Spotler allows
``--rate`` requests per second (429 + Retry-After above it); the connector is
told the same rate (SPOTLER_RATE_PER_S).

(a) The connector: a fresh producer and ``--workers`` spotler workers as OS
    processes on a flushed Redis. Wall time runs from starting the producer
    (the workers are already up) until every valid contact is written and the
    queue is empty.
(b) bench/naive_baseline.py as its own process, on sandboxes reset to the
    same seed and given the same faults: one ``POST contact`` per contact.
(c) A second pass with nothing changed in AFAS: ``connector resync`` and then
    one more poll of the running producer; what Spotler was asked to write.

Prints wall times, Spotler requests and their ratios. Asserts nothing about time.

    python bench/sync_afas_to_spotler.py [--contacts 2000] [--latency-ms 50] [--rate 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import redis

from common import (
    flush_connector_keys,
    machine,
    open_stack,
    print_table,
    set_faults,
    start_workers,
    valid_contact_ids,
)
from connector.stack import Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from naive_baseline import NaiveResult

NAIVE = Path(__file__).with_name("naive_baseline.py")


class Pass(msgspec.Struct, kw_only=True):
    """What one side of the comparison cost."""

    wall_s: float
    spotler: dict[str, Any]
    throttled: dict[str, int]  # route -> 429 answers, from the sandbox's request log
    afas_requests: int
    in_spotler: int
    correct: bool


def apply_faults(stack: Stack, latency_ms: float, rate: float) -> None:
    set_faults(stack, "afas", latency_ms=latency_ms)
    set_faults(stack, "spotler", latency_ms=latency_ms, rate_per_s=rate)
    stack.afas("DELETE", "requests")
    stack.spotler("DELETE", "requests")


def throttled_routes(stack: Stack) -> dict[str, int]:
    found: dict[str, int] = {}
    for record in stack.spotler("GET", "requests/log"):
        if record["status"] == 429:
            found[record["route"]] = found.get(record["route"], 0) + 1
    return found


def spotler_ids(stack: Stack) -> set[str]:
    return {str(c["externalId"]) for c in stack.spotler("GET", "contacts")}


def run_connector(stack: Stack, client: redis.Redis, valid: set[str], args: argparse.Namespace) -> Pass:
    """(a): workers up, then the producer; done when all valid contacts are written and the queue is empty."""
    start_workers(stack, args.workers, args.threads)
    stack.spotler("DELETE", "requests")
    stack.afas("DELETE", "requests")
    started = time.perf_counter()
    stack.start("afas-producer", "produce", "afas")

    def done() -> bool:
        written, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
        return written + rejected >= len(valid) and outstanding(client, "spotler") == 0

    wait_until(done, timeout_s=args.timeout, interval_s=0.02)
    wall = time.perf_counter() - started
    ids = spotler_ids(stack)
    return Pass(wall_s=wall, spotler=stack.spotler("GET", "requests"), throttled=throttled_routes(stack),
                afas_requests=stack.afas("GET", "requests")["total"], in_spotler=len(ids), correct=ids == valid)


def second_pass(stack: Stack, client: redis.Redis, args: argparse.Namespace) -> list[tuple[str, object]]:
    """(c): resync, then one more regular poll; count what reached Spotler meanwhile."""
    stack.spotler("DELETE", "requests")
    began = time.time()
    resync = stack.start("resync", "resync")
    code = resync.wait(args.timeout)
    resynced = time.time()
    history = RunHistory(client)
    if code == 0:
        full = next(r for r in history.latest("afas", limit=50) if r.kind == "resync")
        resync_row: tuple[str, object] = (
            "resync: rows read / changed / enqueued", f"{full.read} / {full.changed} / {full.enqueued_messages}")
    else:  # shown, not hidden: the rest of the pass is still measured
        last = resync.output().strip().splitlines()[-1:] or ["(no output)"]
        resync_row = (f"resync: FAILED, exit {code}", last[0][-100:])

    def polled_after() -> Any:
        return next((r for r in history.latest("afas", limit=50)
                     if r.kind == "poll" and r.started_at > resynced), None)

    poll = wait_until(polled_after, timeout_s=args.timeout, interval_s=0.1)
    wait_until(lambda: outstanding(client, "spotler") == 0, timeout_s=args.timeout, interval_s=0.1)
    routes = stack.spotler("GET", "requests")["routes"]
    polls = [r for r in history.latest("afas", limit=50) if r.kind == "poll" and r.started_at >= began]
    return [
        resync_row,
        ("next poll: rows read / changed / enqueued", f"{poll.read} / {poll.changed} / {poll.enqueued_messages}"),
        ("AFAS producer polls during the pass", len(polls)),
        ("Spotler writes (POST /contact/list)", routes.get("POST /contact/list", 0)),
        ("Spotler requests, all routes", sum(routes.values())),
        *((f"  {route}", count) for route, count in sorted(routes.items())),
    ]


def run_naive(stack: Stack, args: argparse.Namespace) -> tuple[Pass, NaiveResult, set[str]]:
    """(b): sandboxes reset to the same seed, same faults, the naive script as a process."""
    stack.afas("POST", "reset", json={"contacts": args.contacts, "seed": args.seed})
    stack.spotler("POST", "reset")
    valid, _ = valid_contact_ids(stack)
    apply_faults(stack, args.latency_ms, args.rate)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(NAIVE), "--json"], env=stack.env(), capture_output=True,
                          timeout=args.timeout, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"naive baseline failed:\n{done.stderr.decode()[-2000:]}")
    result = msgspec.json.decode(done.stdout.strip().splitlines()[-1], type=NaiveResult)
    ids = spotler_ids(stack)
    side = Pass(wall_s=wall, spotler=stack.spotler("GET", "requests"), throttled=throttled_routes(stack),
                afas_requests=stack.afas("GET", "requests")["total"], in_spotler=len(ids), correct=ids == valid)
    return side, result, valid


def ratio(naive: float, connector: float) -> str:
    return f"{naive / connector:.1f}x" if connector else "∞"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rate", type=float, default=20.0, help="Spotler requests/s (sandbox and connector)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    print(machine())
    env = {"SPOTLER_RATE_PER_S": str(args.rate), "POLL_INTERVAL_S": str(args.poll_interval)}
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        client = redis.Redis.from_url(stack.redis_url)
        flush_connector_keys(client)
        valid, invalid = valid_contact_ids(stack)
        apply_faults(stack, args.latency_ms, args.rate)
        print(f"{args.contacts:,} AFAS rows ({len(valid):,} valid, {invalid} invalid) · latency "
              f"{args.latency_ms:g} ms per request on both sandboxes · Spotler {args.rate:g} requests/s · "
              f"{args.workers} workers x {args.threads} threads")
        connector = run_connector(stack, client, valid, args)
        again = second_pass(stack, client, args)
        for name in [n for n in stack.processes if not n.endswith("sandbox")]:
            stack.processes[name].stop()
        naive, detail, naive_valid = run_naive(stack, args)

    def requests(side: Pass) -> int:
        return int(side.spotler["total"])

    def throttled(side: Pass) -> int:
        return int(side.spotler["statuses"].get("429", 0))

    print_table(
        "(a) connector vs (b) naive, initial sync",
        ["", "connector", "naive", "naive / connector"],
        [
            ("wall time (s)", f"{connector.wall_s:.1f}", f"{naive.wall_s:.1f}", ratio(naive.wall_s, connector.wall_s)),
            ("Spotler requests", requests(connector), requests(naive), ratio(requests(naive), requests(connector))),
            ("  of which 429", throttled(connector), throttled(naive), ""),
            ("AFAS requests", connector.afas_requests, naive.afas_requests, ""),
            ("contacts in Spotler", connector.in_spotler, naive.in_spotler, ""),
            ("= the valid AFAS rows", "yes" if connector.correct else "NO", "yes" if naive.correct else "NO", ""),
        ],
    )
    for name, side in (("connector", connector), ("naive", naive)):
        routes = ", ".join(f"{k} {v}" for k, v in sorted(side.spotler["routes"].items()))
        print(f"  Spotler routes, {name + ':':<10} {routes}")
        if side.throttled:
            print(f"  429 answers, {name + ':':<13} "
                  + ", ".join(f"{k} {v}" for k, v in sorted(side.throttled.items())))
    print(f"  naive script: {detail.upserted} upserted, {detail.refused} refused, {detail.rate_limited} x 429 "
          f"slept, {detail.retried} retried, {detail.failed} failed ({len(naive_valid)} valid rows)")
    print_table("(c) second pass, nothing changed in AFAS", ["", "value"], again)
    req_ratio = requests(naive) / max(1, requests(connector))
    wall_ratio = naive.wall_s / connector.wall_s
    writes = next(v for k, v in again if k.startswith("Spotler writes"))
    print("\ntargets: "
          f"≥ 20x fewer Spotler requests: {'met' if req_ratio >= 20 else 'MISSED'} ({req_ratio:.1f}x) · "
          f"≥ 10x less wall time: {'met' if wall_ratio >= 10 else 'MISSED'} ({wall_ratio:.1f}x) · "
          f"0 writes on the second pass: {'met' if writes == 0 else 'MISSED'} ({writes})")


if __name__ == "__main__":
    main()
