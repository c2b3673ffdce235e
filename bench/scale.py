"""Benchmark: a large AFAS CRM (1,000,000 contacts by default) synced end to end, then a 1 % incremental poll.

The AFAS sandbox is seeded with ``--contacts`` rows (its deep-skip model on, as
by default: the connector reads by key and never pays it); the Spotler
sandbox allows ``--rate`` requests/s and the connector is told the same
(``SPOTLER_RATE_PER_S``), raised far above Spotler's real limit so that the
link, not the limit, is measured. A producer and ``--workers`` Spotler workers
run as OS processes on an empty Redis.

(a) Initial sync: from starting the AFAS producer (workers already up) until
    every valid row is written (or rejected by Spotler) and the queue is empty.
(b) Incremental poll: ``--changed`` (1 %) of the valid contacts get a new
    e-mail address in AFAS; from the last edit until all of them are written.

Recorded: wall time, contacts/s, AFAS and Spotler calls per contact (the
sandboxes' own counts), peak RSS of the producer and of each worker (the
process and its children), Redis bytes per synced contact (``INFO memory``
``used_memory`` minus the empty Redis: the peak sampled every 0.25 s, and
settled once the queue is empty), and the time per AFAS page over the pass
(gaps between consecutive GetConnector requests in the sandbox's request log,
by tenth of the pass). Asserts nothing about time.

    python bench/scale.py [--contacts 1000000] [--workers 2] [--threads 8] [--rate 2000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import redis

from common import flush_connector_keys, machine, open_stack, print_table, set_faults, start_workers
from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.schemas.mapping import load_mapping
from connector.stack import ManagedProcess, Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.sync.rows import ContactRecord, decode_row

GETCONNECTOR_ROUTE = "GET /connectors/Spotler_Contacts"


class Sampler:
    """Peak Redis memory and peak RSS per process tree, sampled in a thread until stopped."""

    def __init__(self, client: redis.Redis, processes: dict[str, ManagedProcess], interval_s: float = 0.25) -> None:
        self.client = client
        self.processes = processes
        self.interval_s = interval_s
        self.peak_redis = 0
        self.peak_rss: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        self.peak_redis = max(self.peak_redis, used_memory(self.client))
        for name, proc in list(self.processes.items()):
            if name.endswith("sandbox") or not proc.alive():
                continue
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), tree_rss(proc.pid))


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def afas_rows(stack: Stack) -> Iterator[list[dict[str, Any]]]:
    mapping = load_mapping(None)
    # The sandbox encodes and orders every row on the first query after seeding: at a million rows
    # that takes longer than a call's usual timeout (the producer meets it too, and retries).
    with AfasClient(f"{stack.afas_url}/ProfitRestServices", DEFAULT_TOKEN, timeout=600) as client:
        yield from client.iter_pages("Spotler_Contacts", key=mapping.keys.contact_id, page_size=5000)


def valid_ids(stack: Stack) -> tuple[list[str], int]:
    """The ContactIds the producer will write, decoded as it decodes them; and the invalid row count."""
    mapping = load_mapping(None)
    valid: list[str] = []
    invalid = 0
    for page in afas_rows(stack):
        for row in page:
            decoded = decode_row(row, mapping)
            if isinstance(decoded, ContactRecord):
                valid.append(decoded.contact_id)
            else:
                invalid += 1
    return valid, invalid


def written(client: redis.Redis) -> int:
    done, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
    return done + rejected


def page_gaps(stack: Stack) -> list[float]:
    """Seconds between consecutive GetConnector requests, in the order they were made."""
    log = [r for r in stack.afas("GET", "requests/log") if r["route"] == GETCONNECTOR_ROUTE and r["status"] == 200]
    times = sorted(r["at"] for r in log)
    return [b - a for a, b in itertools.pairwise(times)]


def by_tenth(gaps: list[float]) -> list[str]:
    if len(gaps) < 10:
        return [f"{statistics.median(gaps) * 1000:.0f}" if gaps else "-"]
    size = len(gaps) / 10
    return [f"{statistics.median(gaps[int(i * size):int((i + 1) * size)]) * 1000:.0f}" for i in range(10)]


def edit_emails(stack: Stack, ids: list[str], threads: int = 4) -> None:
    def one(cid: str) -> None:
        fields = {"EmAd": f"scale.{cid}@example.org"}
        stack.afas("POST", "edit", json={"entity": "contact", "id": cid, "fields": fields})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=2000.0, help="Spotler requests/s (sandbox and connector)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of valid contacts edited for (b)")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()

    print(machine())
    env = {"SPOTLER_RATE_PER_S": str(args.rate), "POLL_INTERVAL_S": str(args.poll_interval)}
    figures: dict[str, Any] = {"contacts": args.contacts, "workers": args.workers, "threads": args.threads,
                               "rate_per_s": args.rate}
    seeded = time.perf_counter()
    with open_stack(args.contacts, seed=args.seed, env=env) as stack:
        stack.start_sandboxes()
        figures["seed_s"] = round(time.perf_counter() - seeded, 1)
        client = redis.Redis.from_url(stack.redis_url)
        flush_connector_keys(client)
        valid, invalid = valid_ids(stack)
        set_faults(stack, "spotler", rate_per_s=args.rate)
        print(f"{args.contacts:,} AFAS rows ({len(valid):,} valid, {invalid:,} invalid), seeded and up in "
              f"{figures['seed_s']} s · Spotler {args.rate:g} requests/s · {args.workers} workers x "
              f"{args.threads} threads · poll every {args.poll_interval:g} s")
        start_workers(stack, args.workers, args.threads)
        empty = used_memory(client)
        stack.afas("DELETE", "requests")
        stack.spotler("DELETE", "requests")

        with Sampler(client, stack.processes) as sampler:
            began = time.perf_counter()
            stack.start("afas-producer", "produce", "afas")
            wait_until(lambda: written(client) >= len(valid) and outstanding(client, "spotler") == 0,
                       timeout_s=args.timeout, interval_s=0.1)
            wall = time.perf_counter() - began
            time.sleep(2)
            settled = used_memory(client)
            afas_calls = int(stack.afas("GET", "requests")["total"])
            spotler_calls = int(stack.spotler("GET", "requests")["total"])
            gaps = page_gaps(stack)
            initial_peak = sampler.peak_redis

            figures["initial"] = {
                "wall_s": round(wall, 1), "contacts_per_s": round(len(valid) / wall),
                "afas_calls": afas_calls, "spotler_calls": spotler_calls,
                "afas_calls_per_contact": round(afas_calls / len(valid), 5),
                "spotler_calls_per_contact": round(spotler_calls / len(valid), 5),
                "redis_bytes_per_contact_peak": round((initial_peak - empty) / len(valid), 1),
                "redis_bytes_per_contact_settled": round((settled - empty) / len(valid), 1),
                "afas_pages": len(gaps) + 1, "page_ms_by_tenth": by_tenth(gaps),
                "written": written(client),
            }

            changed = valid[:: max(1, round(1 / args.changed))] if args.changed > 0 else []
            stack.afas("DELETE", "requests")
            stack.spotler("DELETE", "requests")
            before = written(client)
            edit_started = time.perf_counter()
            edit_emails(stack, changed)
            edited = time.perf_counter()
            wait_until(lambda: written(client) >= before + len(changed) and outstanding(client, "spotler") == 0,
                       timeout_s=args.timeout, interval_s=0.1)
            caught_up = time.perf_counter()
            time.sleep(2)
            figures["incremental"] = {
                "changed": len(changed), "edit_s": round(edited - edit_started, 1),
                "last_edit_to_written_s": round(caught_up - edited, 1),
                "afas_calls": int(stack.afas("GET", "requests")["total"]),
                "spotler_calls": int(stack.spotler("GET", "requests")["total"]),
                "redis_bytes_per_contact_settled": round((used_memory(client) - empty) / len(valid), 1),
            }
            figures["peak_rss_mb"] = {k: round(v / 2**20) for k, v in sorted(sampler.peak_rss.items())}
            figures["redis_bytes_per_contact_peak"] = round((sampler.peak_redis - empty) / len(valid), 1)

    ini, inc = figures["initial"], figures["incremental"]
    print_table("(a) initial sync", ["", "value"], [
        ("valid contacts written", f"{ini['written']:,}"),
        ("wall time (s)", ini["wall_s"]),
        ("contacts/s", f"{ini['contacts_per_s']:,}"),
        ("AFAS calls / contact", ini["afas_calls_per_contact"]),
        ("Spotler calls / contact", ini["spotler_calls_per_contact"]),
        ("Redis bytes / contact, peak", ini["redis_bytes_per_contact_peak"]),
        ("Redis bytes / contact, settled", ini["redis_bytes_per_contact_settled"]),
        ("AFAS pages", f"{ini['afas_pages']:,}"),
        ("ms per AFAS page, median by tenth of the pass", " ".join(ini["page_ms_by_tenth"])),
    ])
    print_table(f"(b) incremental poll, {args.changed:.0%} changed", ["", "value"], [
        ("contacts edited in AFAS", f"{inc['changed']:,}"),
        ("last edit → all written (s)", inc["last_edit_to_written_s"]),
        ("AFAS calls", inc["afas_calls"]),
        ("Spotler calls", inc["spotler_calls"]),
        ("Redis bytes / contact, settled after", inc["redis_bytes_per_contact_settled"]),
    ])
    print_table("peak RSS (MB)", ["process", "MB"], list(figures["peak_rss_mb"].items()))
    if args.json:
        print("SCALE " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
