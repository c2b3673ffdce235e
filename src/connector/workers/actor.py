"""Thin actors: a plain function of one typed payload, declared on the connector's broker.

A message carries one keyword argument, ``payload`` (a single positional
argument is accepted too): a msgspec value sent as builtins
(``msgspec.to_builtins``) and rebuilt with ``msgspec.convert`` at the actor's
entry, so no untyped dict crosses a queue. A payload that does not
convert is a ``FatalError`` (it can never succeed). Whatever the function
raises goes to the ``ErrorPolicy``.

    @connector_actor(queue_name="spotler", payload=SpotlerBatch, entity_key=lambda b: ...)
    def upsert_batch(batch: SpotlerBatch) -> None: ...

    send(upsert_batch, SpotlerBatch(...))
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import dramatiq
import msgspec
from dramatiq.middleware import CurrentMessage, Interrupt

from connector.errors import FatalError
from connector.workers.dead_letters import DeadLetter, Reason, letter_for_message
from connector.workers.middleware import ActorFailed, policy_of

__all__ = ["PAYLOAD", "connector_actor", "dead_letter_item", "message_for", "send"]

log = logging.getLogger("connector.workers")

T = TypeVar("T")

PAYLOAD = "payload"  # the one keyword argument of every connector message


def connector_actor(
    *,
    queue_name: str,
    payload: Any,
    actor_name: str | None = None,
    entity_key: Callable[[Any], str | None] | None = None,
    broker: dramatiq.Broker | None = None,
    **options: Any,
) -> Callable[[Callable[[T], None]], dramatiq.Actor[..., None]]:
    """Declare ``fn(payload)`` as an actor on ``queue_name``.

    ``payload`` is the msgspec type (a Struct or a tagged union of Structs);
    ``entity_key`` names the entity of a decoded payload (``"contact:12345"``)
    for logs and dead letters; ``options`` are actor options (``max_retries``,
    ``min_backoff``, ``max_backoff``, ``max_age`` in ms, ``time_limit``, ...).
    ``broker`` defaults to the global one from ``connector.workers.broker``.
    """
    if broker is None:
        from connector.workers.broker import broker as global_broker

        broker = global_broker

    def decode(data: Any) -> Any:
        try:
            return msgspec.convert(data, payload)
        except msgspec.ValidationError as exc:
            raise FatalError(f"payload is not a valid {_type_name(payload)}: {exc}") from None

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        return entity_key(decode(_payload_of(args, kwargs))) if entity_key is not None else None

    def decorator(fn: Callable[[T], None]) -> dramatiq.Actor[..., None]:
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                fn(decode(_payload_of(args, kwargs)))
            except (Exception, Interrupt) as exc:  # Interrupt: the time limit
                raise ActorFailed(exc) from exc

        run.__name__ = run.__qualname__ = fn.__name__
        run.__module__ = fn.__module__
        run.__doc__ = fn.__doc__
        declare = dramatiq.actor(
            actor_name=actor_name or fn.__name__,
            queue_name=queue_name,
            broker=broker,
            entity_key=key_of,
            **options,
        )
        declared = declare(run)
        # Dramatiq's actor logs every call's arguments (personal data) at debug.
        declared.logger.setLevel(max(logging.INFO, declared.logger.level))
        return declared

    return decorator


def message_for(
    actor: dramatiq.Actor[..., Any], payload: Any, **options: Any
) -> dramatiq.Message[Any]:
    """The message that runs ``actor`` on ``payload`` (not yet sent)."""
    return actor.message_with_options(kwargs={PAYLOAD: msgspec.to_builtins(payload)}, **options)


def send(
    actor: dramatiq.Actor[..., Any], payload: Any, *, delay_ms: int | None = None
) -> dramatiq.Message[Any]:
    """Enqueue ``actor`` on ``payload``; returns the enqueued message."""
    return actor.broker.enqueue(message_for(actor, payload), delay=delay_ms)


def dead_letter_item(
    actor: dramatiq.Actor[..., Any],
    payload: Any,
    *,
    error: BaseException,
    entity_key: str | None = None,
    reason: Reason = "fatal",
) -> DeadLetter:
    """Dead-letter one item of the current message's work; the rest goes on.

    ``payload`` is what ``actor`` takes, holding just this item (for example a
    batch of one contact), so a replay re-runs only this item. Called from
    inside an actor, the letter records the message it came from; its id
    derives from that message and ``entity_key``, so a redelivered message
    overwrites rather than duplicates the letter.
    """
    policy = policy_of(actor.broker)
    message = message_for(actor, payload)
    current = CurrentMessage.get_current_message()
    source_id = current.message_id if current is not None else None
    if entity_key is None:
        entity_key = policy.entity_key(actor.broker, message)
    letter_id = (
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source_id}/{entity_key}"))
        if source_id and entity_key
        else str(uuid.uuid4())
    )
    attempts = int(current.options.get("retries", 0)) + 1 if current is not None else 1
    letter = letter_for_message(
        message,
        reason=reason,
        error=error,
        attempts=attempts,
        entity_key=entity_key,
        letter_id=letter_id,
        source_message_id=source_id,
    )
    policy.store.add(letter)
    log.warning(
        "item %s of message %s dead-lettered (%s) as %s: %s: %s",
        entity_key, source_id, reason, letter.id, letter.error_class, letter.error,
    )
    return letter


def _payload_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if PAYLOAD in kwargs:
        return kwargs[PAYLOAD]
    if len(args) == 1 and not kwargs:
        return args[0]
    raise FatalError(f"a connector message carries one argument, {PAYLOAD!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)
