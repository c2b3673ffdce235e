"""The poll loop of a producer process, guarded so that only one runs per source.

A producer process never exits for a Redis outage or for a bug in a poll:

- **The lease.** A Redis key holds the token of the producer that may poll; a
  thread renews it every third of the lease (a poll can outlast the lease).
  Taking and renewing are one script: the key is extended when it holds our
  token, set again when it is gone (Redis lost its data), refused when it holds
  another's. The producer also keeps the lease by its own clock: valid until
  the start of the last successful take or renewal, plus the lease.
- **Redis outages are waited out.** A Redis error while taking, renewing,
  polling (the poll's own Redis calls, its enqueues) or releasing logs one
  warning when the outage starts ("Redis unavailable (…); waiting"); the loop
  waits with capped backoff (1 s doubling to 30 s), pings, and polls again once
  Redis answers, logging when it is back and how long it was gone.
- **The lease during an outage.** While renewals fail with Redis errors the
  producer polls on as long as its own clock says the lease lasts; past that,
  polling pauses (another producer may rightly take over) until the lease is
  taken again, once Redis answers.
- **Another holder.** A renewal refused because the key holds another
  producer's token pauses polling; the producer waits for the lock as if newly
  started. A running poll is not interrupted (it cannot be, safely).
- **Other errors in a poll.** ``AuthError`` and ``ConfigError`` exit 2 (they
  need a fix); another ``ConnectorError`` (AFAS or Spotler failing) is a warning
  and the poll runs again the next interval; any other exception (a bug, an odd
  value) is logged at error with its traceback, e-mail addresses masked, once
  per occurrence, and the poll is retried with the capped backoff.
- **After each poll** that ended or failed on AFAS or Spotler, ``after_poll``
  (the alerts' ``AlertMonitor.kick``) is called: it only signals another
  thread, and an error in it is logged, never lets the loop stop.
- **Exit codes.** 0 after SIGTERM/SIGINT (or ``stop``) or ``max_polls``
  completed polls; 2 when a fix is needed; 3 with ``wait_for_lock=False`` when
  another producer holds the lock at start (a Redis outage at start is waited
  out first; a holder met later is waited for).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType

import redis
from dramatiq.errors import BrokerConnectionError

from connector.errors import AuthError, ConfigError, ConnectorError
from connector.redaction import redact, redact_exception
from connector.state import keys

__all__ = [
    "BACKOFF_MAX_S", "BACKOFF_START_S", "REDIS_ERRORS", "ProducerLock", "RedisOutage", "backoff", "run_loop",
]

log = logging.getLogger(__name__)

# What a Redis outage raises: redis-py's errors, and the broker's when it enqueues.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, BrokerConnectionError)
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0

# Extend our lease; take it if nobody holds it (1 = extended, 2 = taken again); 0 = another's.
_TAKE = (
    "local holder = redis.call('get', KEYS[1]) "
    "if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end "
    "if not holder then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end "
    "return 0"
)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {redact(str(exc))[:200]}"


def backoff(cap_s: float = BACKOFF_MAX_S) -> Iterator[float]:
    """Capped exponential waits: 1 s, 2 s, 4 s … ``cap_s``; a fresh one after a success."""
    delay = BACKOFF_START_S
    while True:
        yield min(delay, cap_s)
        delay = min(delay * 2, cap_s)


class RedisOutage:
    """One line when Redis stops answering, one when it is back (with how long it was gone)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.warning("%s: Redis unavailable (%s); waiting", self.what, _said(exc))

    def answered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            gone, self._since = time.monotonic() - self._since, None
        log.info("%s: Redis is back after %.1fs", self.what, gone)


class ProducerLock:
    """A Redis lease renewed while the producer lives; a dead producer's lease runs out."""

    def __init__(self, client: redis.Redis, source: str, lease_s: float = 30.0) -> None:
        self.client = client
        self.source = source
        self.key = keys.producer_lock(source)
        self.token = uuid.uuid4().hex
        self.lease_s = lease_s
        self.lease_ms = int(lease_s * 1000)
        self.valid_until = 0.0  # by our own clock

    def acquire(self) -> bool:
        """Take the lease (or extend it, if it is still ours); False while another producer holds it."""
        return self._take() > 0

    def renew(self) -> bool:
        """Extend the lease (taking it again if Redis lost it); False when another producer holds it."""
        outcome = self._take()
        if outcome == 2:
            log.warning("producer lock %s was gone from Redis (its data lost?); taken again", self.key)
        return outcome > 0

    def _take(self) -> int:
        started = time.monotonic()
        outcome = int(self.client.eval(_TAKE, 1, self.key, self.token, self.lease_ms))
        if outcome:
            self.valid_until = started + self.lease_s
        return outcome

    def remaining_s(self) -> float:
        """How long the lease lasts by our own clock (0 once it ran out)."""
        return max(0.0, self.valid_until - time.monotonic())

    def release(self) -> None:
        self.valid_until = 0.0
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def holder_ttl_s(self) -> float:
        return max(0.0, float(self.client.pttl(self.key)) / 1000)


class _Loop:
    """The state of one ``run_loop``: the main thread polls, a second one renews the lease."""

    def __init__(self, poll: Callable[[], object], lock: ProducerLock, interval_s: float,
                 max_polls: int | None, stop: threading.Event,
                 after_poll: Callable[[], object] | None = None) -> None:
        self.poll = poll
        self.after_poll = after_poll
        self.lock = lock
        self.interval_s = interval_s
        self.max_polls = max_polls
        self.stop = stop
        self.name = f"producer {lock.source}"
        self.outage = RedisOutage(self.name)
        self.holding = threading.Event()
        self.lost = threading.Event()  # Redis answered a renewal with another holder's token
        self.failing = False  # the main thread's last Redis call failed: only its success ends an outage
        self.polls = 0

    def trouble(self, exc: Exception, doing: str) -> None:
        """A failed lease operation: the outage's one line, or a bug's traceback."""
        if isinstance(exc, REDIS_ERRORS):
            self.outage.failed(exc)
        else:
            log.error("%s: %s failed unexpectedly\n%s", self.name, doing, _traceback(exc))

    def take_lock(self, exit_if_held: bool) -> int | None:
        """Wait until this producer holds the lease: None then, else the exit code."""
        waits, waiting = backoff(), False
        while not self.stop.is_set():
            try:
                got = self.lock.acquire()
                ttl = 0.0 if got else self.lock.holder_ttl_s()
            except Exception as exc:
                self.failing = True
                self.trouble(exc, "taking the lock")
                self.stop.wait(next(waits))
                continue
            self.failing, waits = False, backoff()
            self.outage.answered()
            if got:
                log.info("producer lock %s acquired", self.lock.key)
                self.lost.clear()
                self.holding.set()
                return None
            if exit_if_held:
                log.error("another producer holds %s (lease %.0fs left); exiting", self.lock.key, ttl)
                return 3
            if not waiting:
                log.info("another producer holds %s (lease %.0fs left); waiting", self.lock.key, ttl)
                waiting = True
            self.stop.wait(min(5.0, max(0.5, ttl)))
        return 0

    def keep_lease(self) -> None:
        """Renew every third of the lease; after a Redis error, sooner, with backoff."""
        period = self.lock.lease_s / 3
        waits = backoff(cap_s=period)
        delay = period
        while not self.stop.wait(delay):
            delay = period
            if not self.holding.is_set():
                continue
            try:
                kept = self.lock.renew()
            except Exception as exc:
                self.trouble(exc, "renewing the lock")
                delay = next(waits)
                continue
            waits = backoff(cap_s=period)
            if not self.failing:
                self.outage.answered()
            if not kept and self.holding.is_set():
                self.holding.clear()
                self.lost.set()

    def poll_while_held(self) -> int | None:
        """Poll every interval while the lease lasts: None when it is lost, else the exit code."""
        waits = backoff()
        while not self.stop.is_set():
            if self.lost.is_set():
                log.warning("producer lock %s is held by another producer now; polling paused", self.lock.key)
                return None
            if self.lock.remaining_s() <= 0:
                self.holding.clear()
                log.warning("producer lock %s: lease ran out while Redis was unavailable; polling paused "
                            "until it is taken again", self.lock.key)
                return None
            started = time.monotonic()
            try:
                self.poll()
            except (AuthError, ConfigError) as exc:
                log.error("%s: poll failed and cannot succeed without a fix: %s", self.name, exc)
                return 2
            except ConnectorError as exc:
                log.warning("%s: poll failed, retrying next interval: %s", self.name, exc)
            except REDIS_ERRORS as exc:
                self.failing = True
                self.outage.failed(exc)
                self.wait_for_redis(waits)
                continue
            except Exception as exc:
                delay = next(waits)
                log.error("%s: poll failed unexpectedly, again in %.0fs\n%s", self.name, delay, _traceback(exc))
                self.stop.wait(delay)
                continue
            else:
                if self.failing:  # this poll was the probe: Redis answers it again
                    self.failing = False
                    self.outage.answered()
            self.after()
            waits = backoff()
            self.polls += 1
            if self.max_polls is not None and self.polls >= self.max_polls:
                return 0
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        return 0

    def after(self) -> None:
        if self.after_poll is None:
            return
        try:
            self.after_poll()
        except Exception as exc:
            log.error("%s: after-poll hook failed\n%s", self.name, _traceback(exc))

    def wait_for_redis(self, waits: Iterator[float]) -> None:
        """Wait (capped backoff) until Redis answers a ping, or until stopped."""
        while not self.stop.wait(next(waits)):
            try:
                if self.lock.client.ping():
                    return
            except Exception as exc:
                log.debug("%s: Redis still unavailable (%s)", self.name, _said(exc))

    def release(self) -> None:
        self.holding.clear()
        if not self.lock.valid_until:
            return  # never held
        try:
            self.lock.release()
        except Exception as exc:
            log.warning("producer lock %s not released (%s); it runs out within %.0fs",
                        self.lock.key, _said(exc), self.lock.lease_s)


def _traceback(exc: BaseException) -> str:
    return redact_exception(exc)


def run_loop(
    poll: Callable[[], object],
    lock: ProducerLock,
    *,
    interval_s: float,
    wait_for_lock: bool = True,
    max_polls: int | None = None,
    stop: threading.Event | None = None,
    after_poll: Callable[[], object] | None = None,
) -> int:
    """Poll every ``interval_s`` until SIGTERM/SIGINT; returns the process exit code."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    loop = _Loop(poll, lock, interval_s, max_polls, stop, after_poll)
    renewer = threading.Thread(target=loop.keep_lease, name="producer-lease", daemon=True)
    renewer.start()
    first = True
    try:
        while not stop.is_set():
            code = loop.take_lock(exit_if_held=first and not wait_for_lock)
            first = False
            if code is not None:
                return code
            code = loop.poll_while_held()
            if code is not None:
                return code
        return 0
    finally:
        stop.set()
        renewer.join(timeout=5)
        loop.release()
