"""Rate and concurrency limits in real Redis, shared by clients, threads and OS processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from connector.errors import ConfigError, RateLimited
from connector.settings import Settings
from connector.state.limits import SPOTLER_HEADROOM, ConcurrencyCap, RateLimiter, afas_cap, spotler_rate

# Bounds below only ever loosen on a slow machine: elapsed time is added, never required.
SLACK_S = 0.002


def test_rate_limiter_books_slots_one_interval_apart_across_clients(redis_url: str, redis_client: redis.Redis) -> None:
    interval = 0.1
    limiters = [
        RateLimiter(redis.Redis.from_url(redis_url), "spotler", 1 / interval, max_wait_s=100)
        for _ in range(2)
    ]
    started = time.monotonic()
    for k in range(20):
        wait = limiters[k % 2].reserve()
        elapsed = time.monotonic() - started
        # Slot k is k intervals after the first call: waited plus elapsed reaches it ...
        assert wait + elapsed >= k * interval - SLACK_S
        # ... and no call waits for more than that.
        assert wait <= k * interval + SLACK_S


def test_acquire_waits_for_its_slot(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "spotler", 20.0)
    started = time.monotonic()
    waits = [limiter.acquire() for _ in range(4)]
    assert time.monotonic() - started >= 3 * 0.05 - SLACK_S
    assert waits[0] == 0


def test_rate_limiter_raises_rate_limited_beyond_its_wait_bound(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "slow", 0.001, max_wait_s=10)  # one call per 1000 s
    assert limiter.acquire() == 0
    for _ in range(2):
        with pytest.raises(RateLimited) as raised:
            limiter.acquire()
        # Refused calls book nothing: the next free slot stays where it was.
        assert raised.value.retry_after is not None
        assert 900 < raised.value.retry_after <= 1000


def test_burst_allows_that_many_calls_at_once(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, "bursty", 0.01, burst=3, max_wait_s=1000)
    assert [limiter.reserve() for _ in range(3)] == [0, 0, 0]
    assert limiter.reserve() > 0


def test_slot_raises_rate_limited_when_the_cap_is_full(redis_client: redis.Redis) -> None:
    cap = ConcurrencyCap(redis_client, "afas", 1, lease_s=60, max_wait_s=0.1)
    token, _ = cap.try_acquire()
    assert token is not None
    assert cap.in_use() == 1
    with pytest.raises(RateLimited) as raised, cap.slot():
        pass
    assert raised.value.retry_after is not None
    assert raised.value.retry_after >= 1
    cap.release(token)
    with cap.slot():
        assert cap.in_use() == 1
    assert cap.in_use() == 0


def test_a_dead_holders_lease_expires(redis_client: redis.Redis) -> None:
    cap = ConcurrencyCap(redis_client, "afas", 1, lease_s=0.1)
    token, _ = cap.try_acquire()  # never released: the holder "died"
    assert token is not None
    other, wait = cap.try_acquire()
    assert other is None
    assert 0 <= wait <= 0.1
    deadline = time.monotonic() + 10
    while cap.try_acquire()[0] is None:
        assert time.monotonic() < deadline, "the lease never expired"


_HOLDER = textwrap.dedent(
    """
    import sys, time
    import redis
    from connector.state.limits import ConcurrencyCap

    url, limit, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = redis.Redis.from_url(url)
    enter = client.register_script(
        "local n = redis.call('INCR', KEYS[1]) "
        "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end "
        "return n"
    )
    cap = ConcurrencyCap(client, "afas", limit, lease_s=60, max_wait_s=60, poll_s=0.01)
    for _ in range(rounds):
        with cap.slot():
            enter(keys=["test:cap:current", "test:cap:max"])
            time.sleep(0.02)  # the "AFAS call"
            client.decr("test:cap:current")
            client.incr("test:cap:calls")
    """
)


def test_the_cap_holds_across_os_processes(redis_url: str, redis_client: redis.Redis) -> None:
    limit, processes, rounds = 2, 4, 6
    env = {**os.environ, "REDIS_URL": redis_url}
    holders = [
        subprocess.Popen([sys.executable, "-c", _HOLDER, redis_url, str(limit), str(rounds)], env=env)
        for _ in range(processes)
    ]
    for holder in holders:
        assert holder.wait(timeout=120) == 0
    assert int(redis_client.get("test:cap:calls") or 0) == processes * rounds
    assert 1 <= int(redis_client.get("test:cap:max") or 0) <= limit
    assert int(redis_client.get("test:cap:current") or 0) == 0
    assert ConcurrencyCap(redis_client, "afas", limit).in_use() == 0


def test_factories_follow_the_settings(redis_client: redis.Redis) -> None:
    rate = spotler_rate(redis_client, Settings(spotler_rate_per_s=2.5))
    assert rate.rate_per_s == 2.5
    assert rate.spacing_s == pytest.approx((1 + SPOTLER_HEADROOM) / 2.5)
    cap = afas_cap(redis_client, Settings(afas_max_parallel=6, http_timeout_s=30))
    assert (cap.limit, cap.lease_ms) == (6, 90_000)
    with pytest.raises(ConfigError, match="at most 8"):
        afas_cap(redis_client, Settings(afas_max_parallel=9))


@pytest.mark.parametrize("rate_per_s", [5.0, 20.0, 100.0])
def test_spotler_slots_never_put_one_call_too_many_in_a_one_second_window(
    redis_client: redis.Redis, rate_per_s: float
) -> None:
    """Booked back to back, ``rate`` consecutive Spotler slots span more than a second plus 15 ms of jitter.

    A server counting calls per one-second window opened by a call refuses the next one
    that lands inside it; without headroom the span is exactly 1 s and any jitter does it.
    """
    redis_client.delete("connector:limits:rate:spotler")
    limiter = spotler_rate(redis_client, Settings(spotler_rate_per_s=rate_per_s))
    limiter.max_wait_s = 1000
    n = int(rate_per_s)
    seconds, micros = redis_client.time()
    before_us = seconds * 1_000_000 + micros
    for _ in range(n):
        limiter.reserve()
    booked_until = int(redis_client.get("connector:limits:rate:spotler") or 0)
    # n slots booked from a first one no sooner than ``before_us``: the (n+1)th is free that much later.
    assert booked_until - before_us >= 1_015_000
    assert RateLimiter(redis_client, "plain", rate_per_s).spacing_s * n == pytest.approx(1.0, abs=1e-5)
