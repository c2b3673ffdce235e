"""The retry policy: an outcome becomes an ack, a retry, a delayed re-enqueue or a dead letter.

It replaces Dramatiq's ``Retries`` and ``AgeLimit`` middleware:

- ``RetriableError`` (and anything unexpected): retried with exponential
  backoff (``min_backoff`` … ``max_backoff``), at least ``retry_after``; after
  ``max_retries`` retries the message is dead-lettered as ``exhausted``.
- ``RateLimited``: re-enqueued after ``retry_after`` without counting as a retry.
- ``FatalError`` (``RecordRejected``, ``AuthError``, ``ConfigError``): no retry,
  dead-lettered as ``fatal``.
- ``SkippableError``: logged and acknowledged.
- A message older than ``max_age`` (counted from its first enqueue, waits
  included) is dead-lettered as ``expired`` instead of being run.
- A Redis error raised by the actor (Redis went away under it) is retried like
  a ``RetriableError``, with one warning line and no traceback.
- While Redis is unreachable nothing can be re-enqueued nor dead-lettered: the
  worker thread waits for it (1 s doubling to 30 s) for up to ``redis_wait_s``
  (ten minutes), so a message in flight during an outage is retried once Redis
  answers instead of failing into the broker's dead-letter queue. Only past
  that wait is it failed there (and adopted as ``orphaned`` at the next start).

Per actor, the options ``max_retries``, ``min_backoff``, ``max_backoff``,
``max_age`` (milliseconds, as in Dramatiq) and ``entity_key`` (a callable
``(args, kwargs) -> str | None`` naming the entity for the dead letter) override
the defaults. The defaults give up within about half an hour of retries and
drop nothing younger than six hours.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
import redis
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import BrokerConnectionError, Retry
from dramatiq.middleware import Middleware

from connector.errors import ConnectorError, FatalError, RateLimited, RetriableError, SkippableError
from connector.redaction import redact_exception
from connector.workers import journal_hook
from connector.workers.dead_letters import DeadLetterStore, Reason, error_text, letter_for_message

__all__ = [
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_MAX_BACKOFF_MS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MIN_BACKOFF_MS",
    "REDIS_WAIT_S",
    "ActorFailed",
    "EntityKeyOf",
    "ErrorPolicy",
    "policy_of",
]

log = logging.getLogger("connector.workers")

DEFAULT_MAX_RETRIES = 10
DEFAULT_MIN_BACKOFF_MS = 1_000
DEFAULT_MAX_BACKOFF_MS = 5 * 60_000
DEFAULT_MAX_AGE_MS = 6 * 3_600_000
DEFAULT_RATE_LIMIT_DELAY_MS = 1_000
# The Redis broker cannot delay a message by more than seven days.
_MAX_DELAY_MS = 7 * 86_400_000 - 60_000
# Long enough for a Redis restart or a managed Redis's failover; a longer outage fails the
# message to the broker's dead-letter queue rather than hold a worker thread indefinitely.
REDIS_WAIT_S = 600.0
_REDIS_RETRY_S = (1.0, 30.0)  # first wait, cap
_REDIS_ERRORS = (redis.RedisError, BrokerConnectionError)
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, BrokerConnectionError)

T = TypeVar("T")

EntityKeyOf = Callable[[tuple[Any, ...], dict[str, Any]], str | None]


class ActorFailed(Retry):
    """Carries an actor's exception to the policy.

    Dramatiq's worker logs any other exception together with the message's
    arguments, which hold personal data; it stays silent for ``Retry``, so the
    policy logs instead, with ids only.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class ErrorPolicy(Middleware):
    """Translates outcomes into acks, retries, re-enqueues and dead letters."""

    def __init__(
        self,
        store: DeadLetterStore,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        min_backoff: int = DEFAULT_MIN_BACKOFF_MS,
        max_backoff: int = DEFAULT_MAX_BACKOFF_MS,
        max_age: int | None = DEFAULT_MAX_AGE_MS,
        redis_wait_s: float = REDIS_WAIT_S,
    ) -> None:
        self.store = store
        self.redis_wait_s = redis_wait_s
        self.defaults: dict[str, Any] = {
            "max_retries": max_retries,
            "min_backoff": min_backoff,
            "max_backoff": max_backoff,
            "max_age": max_age,
            "entity_key": None,
        }

    @property
    def actor_options(self) -> set[str]:
        return set(self.defaults)

    def _option(self, broker: dramatiq.Broker, message: Any, name: str) -> Any:
        if name in message.options:
            return message.options[name]
        actor = broker.actors.get(message.actor_name)
        return actor.options.get(name, self.defaults[name]) if actor else self.defaults[name]

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        max_age = self._option(broker, message, "max_age")
        if max_age and current_millis() - message.message_timestamp >= max_age:
            # A failed message is not run. Unlike SkipMessage, this keeps Dramatiq from
            # logging the arguments; after_process_message turns the nack back into an ack.
            message.fail()
            message.connector_expired = True

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if getattr(message, "connector_expired", False):
            if self._dead_letter(broker, message, "expired", None):
                message.failed = False
            return
        if exception is None:
            return
        error = exception.error if isinstance(exception, ActorFailed) else exception
        try:
            self._handle(broker, message, error)
        except _REDIS_ERRORS as exc:
            # Acking now would lose the message; a failed one goes to the broker's
            # dead-letter queue, from which the launcher adopts it.
            log.error("message %s: Redis unavailable for over %.0fs (%s); rejecting it to the broker",
                      message.message_id, self.redis_wait_s, _said(exc))
            message.fail()
        except Exception:
            log.exception("retry policy failed for message %s; rejecting it", message.message_id)
            message.fail()

    def _handle(self, broker: dramatiq.Broker, message: Any, error: BaseException) -> None:
        retries = int(message.options.get("retries", 0))
        what = self._describe(broker, message)
        if isinstance(error, SkippableError):
            log.info("%s skipped: %s", what, error_text(error))
            return
        if isinstance(error, RateLimited):
            delay = _delay_ms(error.retry_after, DEFAULT_RATE_LIMIT_DELAY_MS)
            delay = min(int(delay * random.uniform(1.0, 1.2)), _MAX_DELAY_MS)
            message.options["rate_limited"] = int(message.options.get("rate_limited", 0)) + 1
            log.debug("%s rate-limited; again in %d ms", what, delay)
            self._enqueue(broker, message, delay)
            return
        if isinstance(error, FatalError):
            self._dead_letter(broker, message, "fatal", error)
            return
        max_retries = int(self._option(broker, message, "max_retries"))
        if retries >= max_retries:
            self._dead_letter(broker, message, "exhausted", error)
            return
        _, delay = compute_backoff(
            retries,
            factor=int(self._option(broker, message, "min_backoff")),
            max_backoff=int(self._option(broker, message, "max_backoff")),
        )
        if isinstance(error, RetriableError) and error.retry_after:
            delay = max(delay, _delay_ms(error.retry_after, 0))
        delay = min(delay, _MAX_DELAY_MS)
        message.options["retries"] = retries + 1
        attempt = f"attempt {retries + 1} of {max_retries + 1}"
        if isinstance(error, ConnectorError):
            log.info("%s failed (%s), retry in %d ms: %s", what, attempt, delay, _said(error))
        elif isinstance(error, _REDIS_ERRORS):
            # Redis went away under the actor (or refused a command): transient, and the
            # traceback says nothing new.
            kind = "unavailable" if isinstance(error, _REDIS_DOWN) else "error"
            log.warning("%s failed (%s): Redis %s (%s); retry in %d ms once it answers",
                        what, attempt, kind, _said(error), delay)
        else:
            # The traceback is formatted here so its exception text can be masked too.
            log.error(
                "%s failed unexpectedly (%s), retry in %d ms\n%s",
                what, attempt, delay, redact_exception(error),
            )
        # Journalled before the retry is enqueued, so the retry's own steps come after this one.
        journal_hook.failed(self.store.client, message.queue_name, (message.kwargs or {}).get("payload"),
                            retries + 1, error)
        self._enqueue(broker, message, delay)

    def _enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        self._waiting_for_redis(message, lambda: broker.enqueue(message, delay=delay))

    def _waiting_for_redis(self, message: Any, call: Callable[[], T]) -> T:
        """``call()``, waiting out a Redis outage (capped backoff) for up to ``redis_wait_s``."""
        started = time.monotonic()
        delay, cap = _REDIS_RETRY_S
        waited = False
        while True:
            try:
                result = call()
            except _REDIS_ERRORS:
                if time.monotonic() - started + delay > self.redis_wait_s:
                    raise
                time.sleep(delay)  # a worker thread: nothing else it could do without Redis
                delay, waited = min(delay * 2, cap), True
                continue
            if waited:
                log.info("message %s: Redis answered again after %.1fs", message.message_id,
                         time.monotonic() - started)
            return result

    def _dead_letter(
        self, broker: dramatiq.Broker, message: Any, reason: Reason, error: BaseException | None
    ) -> bool:
        """Store the message's letter; False (and the message failed) if Redis refused it."""
        letter = letter_for_message(
            message,
            reason=reason,
            error=error,
            attempts=int(message.options.get("retries", 0)) + (0 if reason == "expired" else 1),
            entity_key=self.entity_key(broker, message),
        )
        try:
            self._waiting_for_redis(message, lambda: self.store.add(letter))
        except _REDIS_ERRORS:
            log.exception(
                "could not store the dead letter of message %s; rejecting it to the broker instead",
                message.message_id,
            )
            message.fail()
            return False
        log.warning(
            "%s dead-lettered (%s) after %d attempt(s)%s",
            self._describe(broker, message), reason, letter.attempts,
            f": {_said(error)}" if error is not None else "",
        )
        return True

    def entity_key(self, broker: dramatiq.Broker, message: Any) -> str | None:
        """The entity a message is about, by the actor's ``entity_key`` option; None if unknown."""
        key_of = self._option(broker, message, "entity_key")
        if not callable(key_of):
            return None
        try:
            key = key_of(tuple(message.args), dict(message.kwargs))
        except Exception:
            return None
        return str(key) if key is not None else None

    def _describe(self, broker: dramatiq.Broker, message: Any) -> str:
        entity = self.entity_key(broker, message)
        suffix = f" entity {entity}" if entity else ""
        return f"message {message.message_id} ({message.actor_name}{suffix})"


def _delay_ms(retry_after: float | None, default_ms: int) -> int:
    """``retry_after`` seconds as a delay, at most the 7-day cap (``inf`` and 1e306 included).

    Absent, NaN, zero or negative: ``default_ms``. Errors raised outside the HTTP
    clients are not clamped there, so this never trusts the value either.
    """
    if retry_after is None or math.isnan(retry_after) or retry_after <= 0:
        return default_ms
    return int(min(retry_after * 1000, _MAX_DELAY_MS))


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error_text(error)}"


def policy_of(broker: dramatiq.Broker) -> ErrorPolicy:
    """The broker's ErrorPolicy (it holds the dead-letter store)."""
    for middleware in broker.middleware:
        if isinstance(middleware, ErrorPolicy):
            return middleware
    raise LookupError("the broker has no ErrorPolicy middleware; build it with build_broker")
