"""The poll loop of a producer process, guarded so that only one runs per source."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

import redis

from connector.errors import AuthError, ConfigError, ConnectorError
from connector.state import keys

__all__ = ["ProducerLock", "run_loop"]

log = logging.getLogger(__name__)

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class ProducerLock:
    """A Redis lease renewed while the producer lives; a dead producer's lease runs out."""

    def __init__(self, client: redis.Redis, source: str, lease_s: float = 30.0) -> None:
        self.client = client
        self.key = keys.producer_lock(source)
        self.token = uuid.uuid4().hex
        self.lease_ms = int(lease_s * 1000)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.lease_ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.lease_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def holder_ttl_s(self) -> float:
        return max(0.0, float(self.client.pttl(self.key)) / 1000)


def run_loop(
    poll: Callable[[], object],
    lock: ProducerLock,
    *,
    interval_s: float,
    wait_for_lock: bool = True,
    max_polls: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Poll every ``interval_s`` until SIGTERM/SIGINT; returns the process exit code."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    while not lock.acquire():
        if not wait_for_lock:
            log.error("another producer holds %s (lease %.0fs left); exiting", lock.key, lock.holder_ttl_s())
            return 3
        log.info("another producer holds %s; waiting", lock.key)
        if stop.wait(min(5.0, max(0.5, lock.holder_ttl_s()))):
            return 0
    log.info("producer lock %s acquired", lock.key)
    lost = threading.Event()

    def keep_lease() -> None:
        # Renew on a thread: one poll (an initial sync) may outlast the lease.
        while not stop.wait(lock.lease_ms / 3000):
            try:
                renewed = lock.renew()
            except redis.RedisError:
                renewed = False
            if not renewed:
                lost.set()
                stop.set()

    renewer = threading.Thread(target=keep_lease, name="producer-lease", daemon=True)
    renewer.start()
    polls = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                poll()
            except (AuthError, ConfigError) as exc:
                log.error("poll failed and cannot succeed without a fix: %s", exc)
                return 2
            except ConnectorError as exc:
                log.warning("poll failed, retrying next interval: %s", exc)
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    finally:
        stop.set()
        renewer.join(timeout=5)
        lock.release()
    if lost.is_set():
        log.error("producer lock %s lost; exited so that only one producer runs", lock.key)
        return 4
    return 0
