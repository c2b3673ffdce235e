"""The worker process: our own launcher around ``dramatiq.Worker``, not the dramatiq CLI.

A Heroku dyno sends SIGTERM to every process, sometimes twice, and kills
whatever still runs 30 s later. The launcher blocks SIGTERM and SIGINT in all
threads and waits for them synchronously, so a repeated signal counts as one.
On the first it stops taking messages, lets the in-flight ones finish, puts
prefetched ones back on the queue and exits 0 within ``stop_timeout_s`` (+ 3 s).
A message still running then is not acked; the broker hands it to another
worker once this one's heartbeat has lapsed.

Redis outages are waited out. At start the launcher needs Redis (it adopts the
broker's dead letters first): while Redis does not answer it logs one line and
retries with capped backoff (1 s doubling to 30 s), still stopping at once on
SIGTERM. Once running, Dramatiq's consumer threads reconnect by themselves
(every 3 s) and retry acks until Redis answers; their per-attempt lines are
collapsed to one per consumer and minute, and the messages they name are
shown by id, never by their arguments (personal data).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError

from connector.errors import ConfigError
from connector.redaction import RedactingFilter, redact, redact_every_record
from connector.workers.dead_letters import adopt_broker_dead_letters
from connector.workers.middleware import policy_of

__all__ = [
    "ACTOR_MODULES",
    "STOP_TIMEOUT_S",
    "Launcher",
    "ReconnectNoiseFilter",
    "import_actor_modules",
    "install_log_redaction",
]

log = logging.getLogger("connector.workers")

# Imported by ``connector work`` when present; extend as actor modules appear.
ACTOR_MODULES: tuple[str, ...] = (
    "connector.workers.actors_spotler",
    "connector.workers.actors_afas",
)
# Heroku's grace period is 30 s; leave room for requeueing and interpreter exit.
STOP_TIMEOUT_S = 20.0
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_REDIS_ERRORS = (redis.RedisError, BrokerConnectionError)
_REDIS_RETRY_S = (1.0, 30.0)  # first wait at start, cap
# Dramatiq's consumer threads log each reconnect attempt (every 3 s, per queue and delay queue).
_RECONNECT_LINES = ("Consumer encountered", "Restarting consumer", "Failed to post_process_message")
_RECONNECT_WINDOW_S = 60.0


def import_actor_modules(modules: Iterable[str]) -> list[str]:
    """Import each module that exists (declaring its actors); returns those imported."""
    imported = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.debug("actor module %s not present", name)
            continue
        imported.append(name)
    return imported


class ReconnectNoiseFilter(logging.Filter):
    """Lets through one of each kind of Dramatiq consumer reconnect line per consumer and minute."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if not record.name.startswith("dramatiq.worker.ConsumerThread") or not text.startswith(_RECONNECT_LINES):
            return True
        key, now = (record.name, text[:24]), time.monotonic()
        if now - self._last.get(key, -_RECONNECT_WINDOW_S) < _RECONNECT_WINDOW_S:
            return False
        self._last[key] = now
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _REDIS_ERRORS) and not record.args:  # a Redis timeout: its traceback says nothing new
            record.msg, record.args = f"{text} ({type(exc).__name__}: %s)", (redact(str(exc)),)
            record.exc_info = record.exc_text = None
        return True


def install_log_redaction() -> None:
    """Mask addresses and payloads on every root handler, collapse reconnect lines, drop debug payload dumps."""
    root = logging.getLogger()
    redact_every_record()
    logging.getLogger("dramatiq").setLevel(max(logging.INFO, root.getEffectiveLevel()))
    for handler in root.handlers:
        for kind in (RedactingFilter, ReconnectNoiseFilter):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())


class Launcher:
    """Runs one ``dramatiq.Worker`` on some queues until SIGTERM/SIGINT (or ``stop``)."""

    def __init__(
        self,
        broker: RedisBroker,
        queues: Iterable[str],
        *,
        threads: int = 4,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        worker_timeout_ms: int = 1000,
    ) -> None:
        self.broker = broker
        self.queues = sorted(set(queues))
        self.threads = threads
        self.stop_timeout_s = stop_timeout_s
        self.worker_timeout_ms = worker_timeout_ms

    def check_queues(self) -> None:
        """Refuse queues no imported actor listens on (a worker that would idle forever)."""
        declared = self.broker.get_declared_queues()
        unknown = [queue for queue in self.queues if queue not in declared]
        if not self.queues or unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"no actor listens on queue(s) {', '.join(unknown) or '(none given)'}; "
                f"queues with actors: {known}"
            )

    def run(self, stop: threading.Event | None = None) -> int:
        """Work until a stop signal (or until ``stop`` is set); returns the exit status."""
        self.check_queues()
        if stop is None:
            # Blocked before any worker thread exists, so every thread inherits the mask
            # and the signals wait for sigwait below instead of interrupting work.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        adopted = self._adopt_dead_letters(stop)
        if adopted is None:
            log.info("worker stopped before it started: queues=%s", ",".join(self.queues))
            return 0
        if adopted:
            log.warning("took over %d message(s) from the broker's dead-letter queues", adopted)
        self.broker.emit_after("process_boot")
        worker = dramatiq.Worker(
            self.broker,
            queues=set(self.queues),
            worker_threads=self.threads,
            worker_timeout=self.worker_timeout_ms,
        )
        worker.start()
        queues = ",".join(self.queues)
        log.info("worker started: queues=%s threads=%d pid=%d", queues, self.threads, os.getpid())
        if stop is None:
            received = signal.Signals(signal.sigwait(_STOP_SIGNALS)).name
        else:
            stop.wait()
            received = "stop request"
        started = time.monotonic()
        log.info("worker stopping on %s: finishing in-flight messages", received)
        clean = self._stop(worker)
        log.info(
            "worker stopped: queues=%s threads=%d after %.1fs%s",
            queues, self.threads, time.monotonic() - started,
            "" if clean else " (in-flight messages left for redelivery)",
        )
        return 0

    def _adopt_dead_letters(self, stop: threading.Event | None) -> int | None:
        """Adopt the broker's dead letters, waiting for Redis while it does not answer; None if stopped."""
        started = time.monotonic()
        delay, cap = _REDIS_RETRY_S
        waiting = False
        while True:
            try:
                adopted = adopt_broker_dead_letters(self.broker, policy_of(self.broker).store, self.queues)
            except _REDIS_ERRORS as exc:
                if not waiting:
                    log.warning("Redis unavailable (%s: %s); worker waiting for it: queues=%s",
                                type(exc).__name__, redact(str(exc))[:200], ",".join(self.queues))
                    waiting = True
                if self._stop_requested(stop, delay):
                    return None
                delay = min(delay * 2, cap)
                continue
            if waiting:
                log.info("Redis is back after %.1fs; starting the worker", time.monotonic() - started)
            return adopted

    @staticmethod
    def _stop_requested(stop: threading.Event | None, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a stop signal (blocked, so taken with sigtimedwait) or ``stop``."""
        if stop is None:
            return signal.sigtimedwait(_STOP_SIGNALS, timeout_s) is not None
        return stop.wait(timeout_s)

    def _stop(self, worker: dramatiq.Worker) -> bool:
        """Stop the worker within the time budget; False if it had to be abandoned."""
        done = threading.Event()

        def stop_worker() -> None:
            worker.stop(timeout=int(self.stop_timeout_s * 1000))
            done.set()

        threading.Thread(target=stop_worker, name="worker-stop", daemon=True).start()
        # Worker.stop may use its timeout twice (workers, then consumers).
        finished = done.wait(self.stop_timeout_s + 3)
        return finished and not any(thread.is_alive() for thread in worker.workers)
