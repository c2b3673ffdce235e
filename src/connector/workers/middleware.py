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

Per actor, the options ``max_retries``, ``min_backoff``, ``max_backoff``,
``max_age`` (milliseconds, as in Dramatiq) and ``entity_key`` (a callable
``(args, kwargs) -> str | None`` naming the entity for the dead letter) override
the defaults. The defaults give up within about half an hour of retries and
drop nothing younger than six hours.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import Retry
from dramatiq.middleware import Middleware

from connector.clients.http import redact
from connector.errors import ConnectorError, FatalError, RateLimited, RetriableError, SkippableError
from connector.workers.dead_letters import DeadLetterStore, Reason, error_text, letter_for_message

__all__ = [
    "DEFAULT_MAX_AGE_MS",
    "DEFAULT_MAX_BACKOFF_MS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MIN_BACKOFF_MS",
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
    ) -> None:
        self.store = store
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
        except Exception:
            # Acking now would lose the message; a failed one goes to the broker's
            # dead-letter queue, from which the launcher adopts it.
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
            broker.enqueue(message, delay=delay)
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
        else:
            # The traceback is formatted here so its exception text can be masked too.
            log.error(
                "%s failed unexpectedly (%s), retry in %d ms\n%s",
                what, attempt, delay, redact("".join(traceback.format_exception(error))).rstrip(),
            )
        broker.enqueue(message, delay=delay)

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
            self.store.add(letter)
        except redis.RedisError:
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
    return int(retry_after * 1000) if retry_after and retry_after > 0 else default_ms


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error_text(error)}"


def policy_of(broker: dramatiq.Broker) -> ErrorPolicy:
    """The broker's ErrorPolicy (it holds the dead-letter store)."""
    for middleware in broker.middleware:
        if isinstance(middleware, ErrorPolicy):
            return middleware
    raise LookupError("the broker has no ErrorPolicy middleware; build it with build_broker")
