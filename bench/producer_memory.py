"""Benchmark: peak memory (max RSS) of the AFAS producer for a full initial poll, by GetConnector size.

For each size a fresh AFAS sandbox (and a Spotler sandbox, for the settings
only) is seeded and the connector's Redis keys are flushed, so the poll is an
initial one: every valid row is new and enqueued. The producer runs as
``python -m connector produce afas --once`` in a child process; its peak RSS is
the ``ru_maxrss`` that ``os.wait4`` reports for exactly that child. No workers
run: the producer only enqueues into Redis.

``--breakdown N`` also runs one full initial poll of N contacts inside this
process, built as ``connector produce afas`` builds it, and prints where its
time and memory go: the GetConnector reads, reading the agreed state, clearing
earlier rejections, staging the changes as pending and the enqueues (time in a
first poll; the largest growth of traced memory within one call in a second
one, on flushed keys, under tracemalloc).

    python bench/producer_memory.py [--sizes 10000,100000] [--breakdown 10000]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import redis

from common import flush_connector_keys, machine, open_stack, print_table
from connector.clients.afas import page_size_for
from connector.schemas.mapping import load_mapping
from connector.stack import connector_command
from connector.state.queues import outstanding
from connector.state.runs import RunHistory


def measure(contacts: int, seed: int) -> tuple[int, int, int, float, float]:
    """(peak RSS in KiB, rows read, messages enqueued, poll seconds, process seconds) for one size."""
    with open_stack(contacts, seed=seed) as stack:
        stack.start_sandboxes()
        client = redis.Redis.from_url(stack.redis_url)
        flush_connector_keys(client)
        with tempfile.TemporaryFile() as log:
            started = time.perf_counter()
            proc = subprocess.Popen(connector_command("produce", "afas", "--once"), env=stack.env(),
                                    stdout=log, stderr=subprocess.STDOUT)
            # wait4 gives this child's own rusage, untouched by the sandboxes (also our children).
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                log.seek(0)
                raise RuntimeError(f"producer exited {proc.returncode}:\n{log.read().decode()[-2000:]}")
        poll = RunHistory(client).last("afas")
        assert poll is not None, "the producer recorded no poll"
        queued = outstanding(client, "spotler")
        assert queued == poll.enqueued_messages, (queued, poll.enqueued_messages)
        flush_connector_keys(client)
        client.close()
        return int(usage.ru_maxrss), poll.read, poll.enqueued_messages, poll.duration_s, elapsed


def _phases() -> list[tuple[str, Any, str]]:
    from dramatiq.brokers.redis import RedisBroker

    from connector.clients.afas import AfasClient
    from connector.state.agreed import AgreedStore
    from connector.state.ordering import Ordering
    from connector.state.rejections import RejectionStore

    return [
        ("GetConnector page reads", AfasClient, "get_page"),
        ("agreed state read", AgreedStore, "states"),
        ("clear earlier rejections", RejectionStore, "resolve"),
        ("stage changes as pending", Ordering, "stage"),
        ("enqueue batches", RedisBroker, "enqueue"),
    ]


def _measured(fn: Callable[..., Any], into: list[float], traced: bool) -> Callable[..., Any]:
    """``fn``, adding [calls, seconds, largest traced growth in bytes] to ``into``."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        before = tracemalloc.get_traced_memory()[0] if traced else 0
        if traced:
            tracemalloc.reset_peak()
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into[0] += 1
            into[1] += time.perf_counter() - began
            if traced:
                into[2] = max(into[2], tracemalloc.get_traced_memory()[1] - before)
    return run


def breakdown(contacts: int, seed: int) -> None:
    """One full poll in this process: time per phase, then (on flushed keys) traced memory per phase."""
    with open_stack(contacts, seed=seed) as stack:
        stack.start_sandboxes()
        os.environ.update(stack.env())  # the broker module reads REDIS_URL when first imported
        from connector.cli.context import AppContext
        from connector.cli.produce import _afas_producer
        from connector.settings import Settings

        logging.getLogger("connector").setLevel(logging.ERROR)  # the rejected rows' lines
        client = redis.Redis.from_url(stack.redis_url)
        runs: list[dict[str, list[float]]] = []
        polls: list[float] = []
        for traced in (False, True):
            flush_connector_keys(client)
            producer = _afas_producer(AppContext(Settings.from_env()))
            figures: dict[str, list[float]] = {}
            originals = []
            for name, owner, attr in _phases():
                originals.append((owner, attr, getattr(owner, attr)))
                setattr(owner, attr, _measured(getattr(owner, attr), figures.setdefault(name, [0, 0.0, 0]), traced))
            if traced:
                tracemalloc.start()
            began = time.perf_counter()
            try:
                producer.poll_once()
            finally:
                polls.append(time.perf_counter() - began)
                tracemalloc.stop()
                for owner, attr, original in originals:
                    setattr(owner, attr, original)
            runs.append(figures)
        flush_connector_keys(client)
        client.close()
    poll_s = polls[0]
    print_table(
        f"AFAS producer, one full poll of {contacts:,} contacts in this process: {poll_s:.1f} s "
        f"({polls[1]:.1f} s under tracemalloc)",
        ["phase", "calls", "seconds", "share of the poll", "largest growth in one call (MiB)"],
        [(name, int(calls), f"{seconds:.2f}", f"{seconds / poll_s:.0%}", f"{runs[1][name][2] / 2**20:.1f}")
         for name, (calls, seconds, _) in runs[0].items()],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated GetConnector sizes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--breakdown", type=int, metavar="N", help="also break one poll of N contacts down")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(machine())
    columns = len(load_mapping(None).columns)
    print(f"GetConnector pages of {page_size_for(columns):,} rows ({columns} columns of the example mapping), "
          "read by key, one flush (enqueue, then record) per page")
    results = []
    for size in sizes:
        peak_kib, read, messages, poll_s, process_s = measure(size, args.seed)
        results.append((size, peak_kib))
        pages = -(-read // page_size_for(columns))
        print(f"  {size:,} contacts: peak RSS {peak_kib / 1024:.1f} MiB, {read:,} rows read in {pages} page(s), "
              f"{messages:,} messages enqueued, poll {poll_s:.1f} s, process {process_s:.1f} s", flush=True)
    base = results[0][1]
    print_table(
        "AFAS producer, full initial poll (produce afas --once): peak RSS",
        ["contacts", "max RSS (MiB)", f"ratio to {results[0][0]:,}"],
        [(f"{size:,}", f"{kib / 1024:.1f}", f"{kib / base:.2f}") for size, kib in results],
    )
    ratio = results[-1][1] / base
    print(f"\ntarget: ratio ≤ 1.3: {'met' if ratio <= 1.3 else 'MISSED'} ({ratio:.2f})")
    if args.breakdown:
        breakdown(args.breakdown, args.seed)


if __name__ == "__main__":
    main()
