"""Limits held in Redis, so they hold across every worker process and dyno.

``RateLimiter`` spaces calls (Spotler: ``SPOTLER_RATE_PER_S``); ``ConcurrencyCap``
bounds calls in flight (AFAS: ``AFAS_MAX_PARALLEL``, AFAS allows 8 in total).
Both wait a bounded time and then raise ``RateLimited``, which the retry policy
turns into a delayed re-enqueue that does not burn the retry budget. Both use
Redis's clock (``TIME``), so machines with skewed clocks agree.

The Spotler slots lie ``SPOTLER_HEADROOM`` (2 %) further apart than
1/``SPOTLER_RATE_PER_S``. A server that counts calls per one-second window
admits ``rate`` calls in it; slots exactly 1/rate apart put the next call a
hair inside the window whenever it arrives a millisecond earlier than the
call that opened it (measured against the sandbox: 10 % of the writes got a
429, each a lost slot). The headroom lets ``rate`` consecutive calls span
1.02 s, so 20 ms of arrival jitter never makes a call one too many.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from connector.errors import ConfigError, RateLimited
from connector.settings import Settings

__all__ = ["AFAS_PARALLEL_MAX", "SPOTLER_HEADROOM", "ConcurrencyCap", "RateLimiter", "afas_cap", "spotler_rate"]

log = logging.getLogger(__name__)

AFAS_PARALLEL_MAX = 8
SPOTLER_HEADROOM = 0.02  # see the module docstring

# GCRA with reservations: each call books the next slot (theoretical arrival
# time, microseconds) unless it lies further away than max_wait. Returns
# {booked, wait_us}. string.format keeps the 16-digit number exact.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {0, wait} end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, wait}
"""

# A semaphore of leases: holders in a sorted set scored by lease expiry (ms).
# Returns {acquired, ms until the earliest lease expires}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now}
"""


class RateLimiter:
    """At most ``rate_per_s`` calls per second (plus ``burst`` - 1) across all processes."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        rate_per_s: float,
        *,
        burst: int = 1,
        max_wait_s: float = 10.0,
        headroom: float = 0.0,
        namespace: str = "connector:limits",
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or not 0 <= headroom < 1:
            raise ValueError("rate_per_s must be positive, burst at least 1 and headroom in [0, 1)")
        self.name = name
        self.rate_per_s = rate_per_s
        self.max_wait_s = max_wait_s
        self._key = f"{namespace}:rate:{name}"
        self._interval_us = int(1_000_000 * (1 + headroom) / rate_per_s)
        self._tolerance_us = self._interval_us * (burst - 1)
        self._reserve = client.register_script(_RESERVE)

    @property
    def spacing_s(self) -> float:
        """Seconds between two booked slots: 1/rate, plus the headroom."""
        return self._interval_us / 1_000_000

    def acquire(self) -> float:
        """Book the next slot and sleep until it; returns seconds waited.

        Raises RateLimited (nothing booked) when the next free slot is more
        than ``max_wait_s`` away.
        """
        wait_s = self.reserve()
        if wait_s > 0:
            log.debug("%s rate limit: waiting %.3fs", self.name, wait_s)
            time.sleep(wait_s)
        return wait_s

    def reserve(self) -> float:
        """Book the next slot without waiting; returns the seconds until it."""
        booked, wait_us = self._reserve(
            keys=[self._key],
            args=[self._interval_us, self._tolerance_us, int(self.max_wait_s * 1_000_000)],
        )
        wait_s = int(wait_us) / 1_000_000
        if not booked:
            raise RateLimited(
                f"{self.name} rate limit: next free slot in {wait_s:.1f}s", retry_after=wait_s
            )
        return wait_s


class ConcurrencyCap:
    """At most ``limit`` holders at once across all processes; a dead holder's lease expires.

    ``lease_s`` must exceed the longest call made while holding a slot (the
    HTTP timeout and then some): a holder that outlives its lease no longer counts.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        limit: int,
        *,
        lease_s: float = 120.0,
        max_wait_s: float = 30.0,
        poll_s: float = 0.05,
        namespace: str = "connector:limits",
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.client = client
        self.name = name
        self.limit = limit
        self.lease_ms = int(lease_s * 1000)
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self._key = f"{namespace}:slots:{name}"
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self) -> tuple[str | None, float]:
        """One attempt: (token, 0) with a slot, else (None, seconds until a lease expires)."""
        token = uuid.uuid4().hex
        acquired, wait_ms = self._acquire(keys=[self._key], args=[token, self.limit, self.lease_ms])
        return (token, 0.0) if acquired else (None, max(int(wait_ms), 0) / 1000)

    def release(self, token: str) -> None:
        self.client.zrem(self._key, token)

    def in_use(self) -> int:
        """Live leases right now (expired ones are not counted)."""
        seconds, micros = self.client.time()
        now_ms = seconds * 1000 + micros // 1000
        return int(self.client.zcount(self._key, now_ms, "+inf"))

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the block; waits up to ``max_wait_s``, then raises RateLimited."""
        deadline = time.monotonic() + self.max_wait_s
        while True:
            token, expires_in = self.try_acquire()
            if token is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RateLimited(
                    f"{self.name}: {self.limit} calls already in flight",
                    retry_after=max(1.0, min(expires_in, self.max_wait_s)),
                )
            # Jitter keeps waiting processes from polling in lockstep.
            time.sleep(min(remaining, self.poll_s * random.uniform(0.5, 1.5)))
        try:
            yield
        finally:
            try:
                self.release(token)
            except redis.RedisError:
                # The lease runs out on its own; the caller's outcome matters more.
                log.warning("%s: could not release a slot; its lease will expire", self.name)


def spotler_rate(client: redis.Redis, settings: Settings) -> RateLimiter:
    """The shared Spotler request rate (``SPOTLER_RATE_PER_S``, with ``SPOTLER_HEADROOM``)."""
    return RateLimiter(client, "spotler", settings.spotler_rate_per_s, headroom=SPOTLER_HEADROOM)


def afas_cap(client: redis.Redis, settings: Settings) -> ConcurrencyCap:
    """The shared AFAS concurrency cap (``AFAS_MAX_PARALLEL``, at most 8)."""
    if settings.afas_max_parallel > AFAS_PARALLEL_MAX:
        raise ConfigError(
            f"AFAS_MAX_PARALLEL={settings.afas_max_parallel}: AFAS allows at most "
            f"{AFAS_PARALLEL_MAX} parallel calls in total"
        )
    lease_s = max(60.0, 3 * settings.http_timeout_s)
    return ConcurrencyCap(client, "afas", settings.afas_max_parallel, lease_s=lease_s)
