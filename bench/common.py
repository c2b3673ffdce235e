"""Helpers shared by the end-to-end benchmarks: a fresh stack, faults, readiness, CPU, tables."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

from connector.stack import ManagedProcess, Stack, wait_until

__all__ = [
    "cpu_seconds",
    "flush_connector_keys",
    "machine",
    "open_stack",
    "print_table",
    "set_faults",
    "start_workers",
    "valid_contact_ids",
]


def machine() -> str:
    """Date, cores and interpreter: the header line every benchmark prints."""
    today = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"{today} · nproc {os.cpu_count()} · Python {platform.python_version()} · "
        f"{platform.system()} {platform.machine()} · Redis {'REDIS_URL' if os.environ.get('REDIS_URL') else 'embedded'}"
    )


@contextlib.contextmanager
def open_stack(contacts: int, *, seed: int = 1, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A Stack in a temporary folder on REDIS_URL (or its embedded Redis); logs shown if it fails."""
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as folder:
        stack = Stack(Path(folder), redis_url=os.environ.get("REDIS_URL") or None,
                      contacts=contacts, seed=seed, env=env)
        try:
            yield stack
        except BaseException:
            for proc in stack.processes.values():
                tail = proc.output()[-1500:]
                print(f"\n--- last lines of {proc.name} ---\n{tail}")
            raise
        finally:
            stack.close()


def flush_connector_keys(client: redis.Redis) -> int:
    """Delete the connector's and Dramatiq's keys (never the rest of a shared database)."""
    deleted = 0
    for pattern in ("connector:*", "dramatiq:*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(batch), 1000):
            deleted += int(client.delete(*batch[start:start + 1000]))
    return deleted


def set_faults(stack: Stack, side: str, **faults: Any) -> None:
    """PUT /_sandbox/faults on ``afas`` or ``spotler`` (unnamed fields back to their defaults)."""
    call = stack.afas if side == "afas" else stack.spotler
    call("PUT", "faults", json=faults)


def start_workers(stack: Stack, count: int, threads: int, *, timeout_s: float = 60) -> list[ManagedProcess]:
    """Start ``count`` spotler workers and wait until each says it is consuming."""
    workers = [
        stack.start(f"spotler-worker-{n + 1}", "work", "--queue", "spotler", "--threads", str(threads))
        for n in range(count)
    ]
    for proc in workers:
        def ready(proc: ManagedProcess = proc) -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
            return "worker started" in proc.output()

        wait_until(ready, timeout_s=timeout_s, interval_s=0.05)
    return workers


def valid_contact_ids(stack: Stack) -> tuple[set[str], int]:
    """The ContactIds the connector should write (rows that validate) and the number of invalid rows."""
    valid, rejected = stack.afas_records()
    return set(valid), len(rejected)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A small fixed-width table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
