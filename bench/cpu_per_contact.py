"""Benchmark: CPU per synced contact of the connector's processes against bare Dramatiq, in one run.

(a) The connector: an initial sync of ``--contacts`` AFAS rows by a producer
    and ``--workers`` spotler workers (no latency, SPOTLER_RATE_PER_S=10000,
    one poll only). When every valid contact is written and the queue is
    empty, the user + system CPU of the live processes is sampled (psutil),
    start-up included.
(b) Bare Dramatiq on the same Redis: one process sends one no-op message per
    valid contact on a plain RedisBroker, a plain ``dramatiq.Worker`` with the
    same thread count in another process runs them; both sampled the same way
    once the queue is empty.

Prints CPU µs per contact for both and their ratio. Asserts nothing about time.

    python bench/cpu_per_contact.py [--contacts 10000] [--workers 1] [--threads 4]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from common import (
    cpu_seconds,
    flush_connector_keys,
    machine,
    open_stack,
    print_table,
    start_workers,
    valid_contact_ids,
)
from connector.stack import Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding

BARE_QUEUE = "bench_noop"
READY = "ready"
ENQUEUED = "enqueued"


def bare_actor(redis_url: str) -> dramatiq.Actor[[str], None]:
    """A plain RedisBroker with Dramatiq's default middleware and one no-op actor."""
    broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)

    def noop(contact_id: str) -> None:
        """Does nothing: the cost measured is Dramatiq's own."""

    declared: dramatiq.Actor[[str], None] = dramatiq.actor(queue_name=BARE_QUEUE, broker=broker)(noop)
    return declared


def bare_worker(redis_url: str, threads: int) -> None:
    """Role ``bare-worker``: a plain dramatiq.Worker until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    actor = bare_actor(redis_url)
    worker = dramatiq.Worker(actor.broker, queues={BARE_QUEUE}, worker_threads=threads, worker_timeout=1000)
    worker.start()
    print(READY, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    worker.stop()


def bare_enqueuer(redis_url: str, count: int) -> None:
    """Role ``bare-enqueue``: send ``count`` messages, then stay alive until stdin closes."""
    actor = bare_actor(redis_url)
    for n in range(count):
        actor.send(str(n))
    print(ENQUEUED, flush=True)
    sys.stdin.read()


def read_line(proc: subprocess.Popen[str], expected: str) -> None:
    """Wait (on its pipe, so no polling) for the line a bare role prints when it gets there."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        raise RuntimeError(f"expected {expected!r} from a bare Dramatiq process, got {line!r}")


def run_connector(stack: Stack, client: redis.Redis, valid: int, args: argparse.Namespace) -> dict[str, float]:
    """CPU seconds per connector process, sampled when the initial sync is complete."""
    workers = start_workers(stack, args.workers, args.threads)
    at_ready = {w.name: cpu_seconds(w.pid) for w in workers}
    started = time.perf_counter()
    producer = stack.start("afas-producer", "produce", "afas")

    def done() -> bool:
        written, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
        return written + rejected >= valid and outstanding(client, "spotler") == 0

    wait_until(done, timeout_s=args.timeout, interval_s=0.05)
    wall = time.perf_counter() - started
    cpu = {proc.name: cpu_seconds(proc.pid) for proc in [producer, *workers]}
    for proc in [producer, *workers]:
        proc.stop()
    print(f"  connector: synced in {wall:.1f} s; worker start-up CPU "
          + ", ".join(f"{name} {s:.2f} s" for name, s in at_ready.items()), flush=True)
    return cpu


def run_bare(stack: Stack, client: redis.Redis, count: int, args: argparse.Namespace) -> dict[str, float]:
    """CPU seconds of the bare enqueuer and worker, sampled when the queue is empty."""
    def spawn(*role: str) -> subprocess.Popen[str]:
        command = [sys.executable, str(Path(__file__).resolve()), "--redis-url", stack.redis_url, "--role", *role]
        return subprocess.Popen(command, env=stack.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    worker = spawn("bare-worker", "--threads", str(args.threads))
    enqueuer: subprocess.Popen[str] | None = None
    try:
        read_line(worker, READY)
        at_ready = cpu_seconds(worker.pid)
        started = time.perf_counter()
        enqueuer = spawn("bare-enqueue", "--count", str(count))
        read_line(enqueuer, ENQUEUED)
        wait_until(lambda: outstanding(client, BARE_QUEUE) == 0, timeout_s=args.timeout, interval_s=0.05)
        wall = time.perf_counter() - started
        cpu = {"enqueuer": cpu_seconds(enqueuer.pid), "worker": cpu_seconds(worker.pid)}
        print(f"  bare Dramatiq: {count:,} messages sent and processed in {wall:.1f} s; "
              f"worker start-up CPU {at_ready:.2f} s", flush=True)
        return cpu
    finally:
        for proc in (enqueuer, worker):
            if proc is None:
                continue
            if proc is enqueuer and proc.stdin is not None:
                proc.stdin.close()
            else:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="connector worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process (both sides)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--role", choices=["bare-worker", "bare-enqueue"], help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare-worker":
        bare_worker(args.redis_url, args.threads)
        return
    if args.role == "bare-enqueue":
        bare_enqueuer(args.redis_url, args.count)
        return

    print(machine())
    env = {"SPOTLER_RATE_PER_S": "10000", "POLL_INTERVAL_S": "3600"}
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        client = redis.Redis.from_url(stack.redis_url)
        flush_connector_keys(client)
        ids, invalid = valid_contact_ids(stack)
        valid = len(ids)
        print(f"{args.contacts:,} AFAS rows ({valid:,} valid, {invalid} invalid) · no latency · "
              f"{args.workers} connector worker(s) x {args.threads} threads", flush=True)
        connector = run_connector(stack, client, valid, args)
        flush_connector_keys(client)
        bare = run_bare(stack, client, valid, args)
        flush_connector_keys(client)

    def rows(cpu: dict[str, float]) -> list[tuple[str, str, str]]:
        listed = [(name, f"{s:.2f}", f"{s / valid * 1e6:,.0f}") for name, s in cpu.items()]
        total = sum(cpu.values())
        return [*listed, ("total", f"{total:.2f}", f"{total / valid * 1e6:,.0f}")]

    print_table(f"(a) connector: CPU for an initial sync of {valid:,} contacts (start-up included)",
                ["process", "CPU s", "µs per contact"], rows(connector))
    print_table(f"(b) bare Dramatiq: {valid:,} no-op messages, one per contact (start-up included)",
                ["process", "CPU s", "µs per contact"], rows(bare))
    ratio = sum(connector.values()) / sum(bare.values())
    print(f"\nconnector / bare Dramatiq: {ratio:.2f}x · target ≤ 3x: {'met' if ratio <= 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
