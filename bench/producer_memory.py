"""Benchmark: peak memory (max RSS) of the AFAS producer for a full initial poll, by GetConnector size.

For each size a fresh AFAS sandbox (and a Spotler sandbox, for the settings
only) is seeded and the connector's Redis keys are flushed, so the poll is an
initial one: every valid row is new and enqueued. The producer runs as
``python -m connector produce afas --once`` in a child process; its peak RSS is
the ``ru_maxrss`` that ``os.wait4`` reports for exactly that child. No workers
run: the producer only enqueues into Redis.

    python bench/producer_memory.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import redis

from common import flush_connector_keys, machine, open_stack, print_table
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated GetConnector sizes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(machine())
    results = []
    for size in sizes:
        peak_kib, read, messages, poll_s, process_s = measure(size, args.seed)
        results.append((size, peak_kib))
        print(f"  {size:,} contacts: peak RSS {peak_kib / 1024:.1f} MiB, {read:,} rows read, "
              f"{messages:,} messages enqueued, poll {poll_s:.1f} s, process {process_s:.1f} s", flush=True)
    base = results[0][1]
    print_table(
        "AFAS producer, full initial poll (produce afas --once): peak RSS",
        ["contacts", "max RSS (MiB)", f"ratio to {results[0][0]:,}"],
        [(f"{size:,}", f"{kib / 1024:.1f}", f"{kib / base:.2f}") for size, kib in results],
    )
    ratio = results[-1][1] / base
    print(f"\ntarget: ratio ≤ 1.3: {'met' if ratio <= 1.3 else 'MISSED'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
