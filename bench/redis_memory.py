"""Benchmark: Redis memory per synced contact after an initial sync, settled and at its peak.

A Redis server of the benchmark's own (no persistence, nothing else on it) and
the whole link as OS processes on the two sandboxes: ``--workers`` spotler
workers, an afas worker, then both producers (no latency, Spotler rate
10,000/s). The initial sync is the real one: the AFAS producer's first poll
stages every change as pending and enqueues it, the workers write Spotler and
commit the agreed state, the Spotler producer reads back our own writes.

``used_memory`` (``INFO memory``) is read:

- **empty**: the fresh server, only this benchmark connected (the baseline);
- **peak**: the highest value sampled every 50 ms during the sync, and the
  server's own ``used_memory_peak`` (a fresh server: nothing ran on it
  before). Both include the queued messages, so where the producer runs far
  ahead of the workers (a small initial sync) the queue, not the state,
  makes the peak;
- **settled**: once every valid contact is written, the queues are empty and
  both producers have finished a poll that started after that.

Bytes per contact are (used_memory - empty) ÷ valid contacts. A table of the
key families (``MEMORY USAGE`` of every key, summed per family) says where the
settled bytes are. ``--redis-server`` picks the binary (default: the one the
embedded Redis uses); production Redis is usually a jemalloc build such as
``/usr/bin/redis-server``, whose allocator rounds differently.

    python bench/redis_memory.py [--contacts 10000] [--redis-server PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import redis

from common import machine, open_stack, print_table, start_workers, valid_contact_ids
from connector.stack import RedisServer, Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.state.runs import RunHistory


class Server(RedisServer):
    """The benchmark's own redis-server, with a chosen binary."""

    def __init__(self, folder: Path, binary: str) -> None:
        super().__init__(folder)
        self._binary = binary

    def binary(self) -> str:  # type: ignore[override]
        return self._binary


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


class Sampler(threading.Thread):
    """The highest ``used_memory`` seen, every 50 ms, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.highest = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            self.highest = max(self.highest, used(self.client))


def family(key: str) -> str:
    """``connector:agreed:123`` → ``connector:agreed:*``; ids, hex tokens and numbers become ``*``."""
    parts = key.split(":")
    return ":".join("*" if re.fullmatch(r"[0-9a-f]{16,}|-?\d+", p) else p for p in parts)


def families(client: redis.Redis) -> list[tuple[str, int, int]]:
    """(family, keys, bytes) from MEMORY USAGE of every key, largest first."""
    count: dict[str, int] = defaultdict(int)
    size: dict[str, int] = defaultdict(int)
    for raw in client.scan_iter(count=1000):
        key = raw.decode(errors="replace")
        name = family(key)
        count[name] += 1
        size[name] += int(client.memory_usage(raw, samples=0) or 0)
    return sorted(((n, count[n], size[n]) for n in count), key=lambda row: -row[2])


def settle(stack: Stack, client: redis.Redis, valid: int, timeout_s: float) -> float:
    """Wait for every valid contact written, queues empty, then one more poll of both producers.

    Returns when (``perf_counter``) every valid contact was written.
    """
    def written() -> bool:
        done, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
        return done + rejected >= valid and outstanding(client, "spotler") == 0

    wait_until(written, timeout_s=timeout_s, interval_s=0.1)
    synced_at, moment = time.perf_counter(), time.time()
    history = RunHistory(client)
    for source in ("afas", "spotler"):
        wait_until(lambda s=source: any(r.started_at > moment and r.duration_s > 0  # type: ignore[misc]
                                        for r in history.latest(s, limit=5)), timeout_s=timeout_s, interval_s=0.2)
    wait_until(lambda: outstanding(client, "spotler") + outstanding(client, "afas") == 0,
               timeout_s=timeout_s, interval_s=0.1)
    return synced_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--redis-server", default=RedisServer.binary(), help="redis-server binary to measure")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--top", type=int, default=12, help="key families listed")
    args = parser.parse_args()

    version = subprocess.run([args.redis_server, "--version"], capture_output=True, text=True, check=True).stdout
    print(machine())
    print(f"redis-server: {args.redis_server}: {version.strip()}")
    with tempfile.TemporaryDirectory(prefix="connector-redis-memory-") as folder:
        server = Server(Path(folder) / "redis", args.redis_server)
        server.start()
        try:
            run(server, args)
        finally:
            server.kill()


def run(server: Server, args: argparse.Namespace) -> None:
    client = redis.Redis.from_url(server.url)
    env = {"SPOTLER_RATE_PER_S": "10000", "POLL_INTERVAL_S": "5"}
    os.environ["REDIS_URL"] = server.url  # the stack's processes use the benchmark's server
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        valid, invalid = valid_contact_ids(stack)
        empty = used(client)
        sampler = Sampler(server.url)
        sampler.start()
        start_workers(stack, args.workers, args.threads)
        stack.start("afas-worker", "work", "--queue", "afas")
        connected = used(client)
        began = time.perf_counter()
        stack.start("afas-producer", "produce", "afas")
        stack.start("spotler-producer", "produce", "spotler")
        synced_at = settle(stack, client, len(valid), args.timeout)
        written_s = synced_at - began
        wall = time.perf_counter() - began
        sampler.halt.set()
        sampler.join()
        info = client.info("memory")
        settled, server_peak = int(info["used_memory"]), int(info["used_memory_peak"])
        top = families(client)
        for name in [n for n in stack.processes if not n.endswith("sandbox")]:
            stack.processes[name].stop()
    n = len(valid)

    def per(value: int) -> str:
        return f"{(value - empty) / n:.1f}"

    print(f"{args.contacts:,} AFAS rows ({n:,} valid, {invalid} invalid) · {args.workers} spotler workers x "
          f"{args.threads} threads, 1 afas worker, both producers · "
          f"all written after {written_s:.1f} s, settled after {wall:.1f} s")
    print_table(
        "Redis used_memory (INFO memory)",
        ["moment", "used_memory (bytes)", "minus empty", "bytes per valid contact"],
        [
            ("empty (baseline)", f"{empty:,}", "", ""),
            ("workers connected, no contact", f"{connected:,}", f"{connected - empty:,}", per(connected)),
            ("peak, sampled every 50 ms", f"{sampler.highest:,}", f"{sampler.highest - empty:,}", per(sampler.highest)),
            ("peak, used_memory_peak", f"{server_peak:,}", f"{server_peak - empty:,}", per(server_peak)),
            ("settled", f"{settled:,}", f"{settled - empty:,}", per(settled)),
        ],
    )
    print("settled, INFO memory: " + ", ".join(
        f"{name} {int(info[name]):,}" for name in ("used_memory_dataset", "used_memory_overhead", "mem_clients_normal",
                                                   "used_memory_scripts") if name in info))
    print_table(
        "settled: MEMORY USAGE by key family",
        ["family", "keys", "bytes", "bytes per valid contact"],
        [(name, f"{k:,}", f"{b:,}", f"{b / n:.1f}") for name, k, b in top[:args.top]]
        + [("all keys", f"{sum(k for _, k, _ in top):,}", f"{sum(b for *_, b in top):,}",
            f"{sum(b for *_, b in top) / n:.1f}")],
    )


if __name__ == "__main__":
    main()
