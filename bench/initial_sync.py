"""One measured initial AFAS → Spotler sync by the connector's own processes, for the scaling benches.

A run starts from an empty link (connector and Dramatiq keys flushed, the
Spotler sandbox reset to no contacts), puts the given faults on both
sandboxes, starts ``workers`` spotler worker processes with ``threads``
threads each and waits until each says it consumes, then starts the AFAS
producer. Wall time runs from starting the producer until every valid contact
is written (or refused) and the spotler queue is empty; the workers' start-up
is outside it, their first call (the permission catalogue) inside. Spotler
calls and 429 answers are the sandbox's own count over that time.
"""

from __future__ import annotations

import time

import msgspec
import redis

from common import flush_connector_keys, set_faults
from connector.stack import ManagedProcess, Stack, wait_until
from connector.state.keys import COUNTERS
from connector.state.queues import outstanding
from connector.state.runs import RunHistory

__all__ = ["Faults", "SyncRun", "spotler_ids", "sync_once"]


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """What both sandboxes do to each API call during a run."""

    afas_latency_ms: float = 0.0
    spotler_latency_ms: float = 0.0
    spotler_rate_per_s: float | None = None  # the sandbox's 429 limit; None = no limit


class SyncRun(msgspec.Struct, kw_only=True):
    """What one initial sync cost."""

    workers: int
    threads: int
    connector_rate_per_s: float  # SPOTLER_RATE_PER_S given to the workers
    sandbox_rate_per_s: float | None
    contacts: int  # valid contacts to write
    wall_s: float
    contacts_per_s: float
    spotler_calls: int
    spotler_429: int
    spotler_writes: int  # POST contact/list answered, any status
    afas_calls: int
    first_poll_s: float  # the producer's first poll: reading every row and enqueueing every batch
    in_spotler: int
    correct: bool  # Spotler holds exactly the valid AFAS contacts


def spotler_ids(stack: Stack) -> set[str]:
    return {str(c["externalId"]) for c in stack.spotler("GET", "contacts")}


def _first_poll_s(client: redis.Redis, timeout_s: float) -> float:
    def finished() -> float | None:
        polls = [r for r in RunHistory(client).latest("afas", limit=100) if r.kind == "poll"]
        return min(polls, key=lambda r: r.started_at).duration_s if polls else None

    return float(wait_until(finished, timeout_s=timeout_s, interval_s=0.1))


def sync_once(
    stack: Stack,
    client: redis.Redis,
    valid: set[str],
    *,
    workers: int,
    threads: int,
    rate_per_s: float,
    faults: Faults,
    timeout_s: float = 3600.0,
    check: bool = True,
) -> SyncRun:
    """One initial sync from an empty link; every process it started is stopped before it returns."""
    flush_connector_keys(client)
    stack.spotler("POST", "reset")
    set_faults(stack, "afas", latency_ms=faults.afas_latency_ms)
    set_faults(stack, "spotler", latency_ms=faults.spotler_latency_ms, rate_per_s=faults.spotler_rate_per_s)
    env = {"SPOTLER_RATE_PER_S": f"{rate_per_s:g}"}
    started_procs = [
        stack.start(f"spotler-worker-{n + 1}", "work", "--queue", "spotler", "--threads", str(threads), **env)
        for n in range(workers)
    ]
    try:
        _ready(started_procs)
        stack.spotler("DELETE", "requests")
        stack.afas("DELETE", "requests")
        started = time.perf_counter()
        started_procs.append(stack.start("afas-producer", "produce", "afas", **env))

        def done() -> bool:
            written, rejected = (int(v or 0) for v in client.hmget(COUNTERS, "spotler_written", "spotler_rejected"))
            return written + rejected >= len(valid) and outstanding(client, "spotler") == 0

        wait_until(done, timeout_s=timeout_s, interval_s=0.02)
        wall = time.perf_counter() - started
        spotler = stack.spotler("GET", "requests")
        afas_calls = int(stack.afas("GET", "requests")["total"])
        first_poll = _first_poll_s(client, timeout_s)
    finally:
        for proc in reversed(started_procs):
            proc.stop()
    ids = spotler_ids(stack) if check else set()
    return SyncRun(
        workers=workers, threads=threads, connector_rate_per_s=rate_per_s,
        sandbox_rate_per_s=faults.spotler_rate_per_s, contacts=len(valid), wall_s=wall,
        contacts_per_s=len(valid) / wall, spotler_calls=int(spotler["total"]),
        spotler_429=int(spotler["statuses"].get("429", 0)),
        spotler_writes=int(spotler["routes"].get("POST /contact/list", 0)), afas_calls=afas_calls,
        first_poll_s=first_poll, in_spotler=len(ids), correct=check and ids == valid,
    )


def _ready(procs: list[ManagedProcess]) -> None:
    """Wait until each worker process says it consumes (as ``common.start_workers`` does)."""
    for proc in procs:
        def ready(proc: ManagedProcess = proc) -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
            return "worker started" in proc.output()

        wait_until(ready, timeout_s=120, interval_s=0.05)
