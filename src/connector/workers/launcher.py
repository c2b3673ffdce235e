"""The worker process: our own launcher around ``dramatiq.Worker``, not the dramatiq CLI.

A Heroku dyno sends SIGTERM to every process, sometimes twice, and kills
whatever still runs 30 s later. The launcher blocks SIGTERM and SIGINT in all
threads and waits for them synchronously, so a repeated signal counts as one.
On the first it stops taking messages, lets the in-flight ones finish, puts
prefetched ones back on the queue and exits 0 within ``stop_timeout_s`` (+ 3 s).
A message still running then is not acked; the broker hands it to another
worker once this one's heartbeat has lapsed.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from connector.clients.http import redact
from connector.errors import ConfigError
from connector.workers.dead_letters import adopt_broker_dead_letters
from connector.workers.middleware import policy_of

__all__ = [
    "ACTOR_MODULES",
    "STOP_TIMEOUT_S",
    "Launcher",
    "RedactingFilter",
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


class RedactingFilter(logging.Filter):
    """Masks e-mail addresses in log lines and tracebacks, Dramatiq's own included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(text).rstrip("\n")
        return True


def install_log_redaction() -> None:
    """Mask e-mail addresses on every root handler; keep Dramatiq's payload-dumping debug lines out."""
    root = logging.getLogger()
    logging.getLogger("dramatiq").setLevel(max(logging.INFO, root.getEffectiveLevel()))
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


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
        adopted = adopt_broker_dead_letters(self.broker, policy_of(self.broker).store, self.queues)
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
