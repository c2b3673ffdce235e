"""Small actors that exercise the worker machinery in tests (queue ``testing``).

Production never imports this module; ``connector work --import
connector.workers.testing_actors --queue testing`` does, in the launcher tests.
Each job records in Redis that it started, how often it was attempted and how
often it completed, so a test can prove nothing ran twice and nothing was lost.
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple

import dramatiq
import msgspec
import redis

from connector.errors import FatalError, RateLimited, RetriableError, SkippableError
from connector.workers.actor import connector_actor, dead_letter_item

__all__ = ["ATTEMPTS", "DONE", "RELEASE", "STARTED", "TEST_QUEUE", "Actors", "Batch", "Job", "declare"]

TEST_QUEUE = "testing"
STARTED = "testing:started"  # set of job ids
ATTEMPTS = "testing:attempts"  # hash job id -> attempts
DONE = "testing:done"  # hash job id -> completions
RELEASE = "testing:release:"  # + job id: a list a held job waits on

Failure = Literal["", "retriable", "rate_limited", "fatal", "skip", "crash"]


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    seconds: float = 0.0  # simulated work
    fail: Failure = ""
    times: int = 0  # fail only the first `times` attempts (0: every attempt)
    retry_after: float | None = None
    note: str = ""  # goes into error texts (tests put an e-mail address here)
    hold: bool = False  # block until the test pushes to RELEASE + id (at most a minute)


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[Job]


class Actors(NamedTuple):
    run_job: dramatiq.Actor[..., None]
    run_batch: dramatiq.Actor[..., None]


def _error(job: Job) -> Exception:
    text = f"job {job.id} failed ({job.note})"
    match job.fail:
        case "retriable":
            return RetriableError(text, retry_after=job.retry_after)
        case "rate_limited":
            return RateLimited(text, retry_after=job.retry_after)
        case "fatal":
            return FatalError(text)
        case "skip":
            return SkippableError(text)
        case _:
            return ValueError(text)


def _perform(client: redis.Redis, job: Job) -> None:
    client.sadd(STARTED, job.id)
    attempt = int(client.hincrby(ATTEMPTS, job.id, 1))
    if job.seconds:
        time.sleep(job.seconds)  # stands in for a slow HTTP call
    if job.hold:
        # Short waits: a blocking call longer than the client's socket timeout would fail.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.blpop([RELEASE + job.id], timeout=5):
            pass
    if job.fail and (job.times == 0 or attempt <= job.times):
        raise _error(job)
    client.hincrby(DONE, job.id, 1)


def declare(broker: dramatiq.Broker, **options: Any) -> Actors:
    """Declare the test actors on ``broker`` (short backoffs unless ``options`` say otherwise)."""
    client: redis.Redis = broker.client  # type: ignore[attr-defined]
    options = {"min_backoff": 10, "max_backoff": 50, "max_retries": 3, **options}

    @connector_actor(
        queue_name=TEST_QUEUE, payload=Job, broker=broker,
        entity_key=lambda job: f"job:{job.id}", **options,
    )
    def run_job(job: Job) -> None:
        _perform(client, job)

    @connector_actor(
        queue_name=TEST_QUEUE, payload=Batch, broker=broker,
        entity_key=lambda b: f"job:{b.jobs[0].id}" if len(b.jobs) == 1 else None, **options,
    )
    def run_batch(batch: Batch) -> None:
        for job in batch.jobs:
            try:
                _perform(client, job)
            except FatalError as exc:
                dead_letter_item(run_batch, Batch(jobs=[job]), error=exc, entity_key=f"job:{job.id}")

    return Actors(run_job, run_batch)


def _declare_on_global_broker() -> Actors:
    from connector.workers.broker import broker

    return declare(broker)


run_job, run_batch = _declare_on_global_broker()
