"""Idempotency keys in Redis: a redelivered message never writes twice.

An actor claims the event's key before the write and marks it done after.
A claim is a lease: if the worker dies between claim and done, the lease
expires and a redelivered message may claim the key again. A key marked done
is remembered for ``ttl_s``.

The key must identify one version of the data, not only the entity: it is
(source, entity, content hash) and the hashed content should include the
source's change stamp (AFAS modification date, Spotler ``lastChanged``).
Otherwise a field that goes A → B → A within ``ttl_s`` would skip the second A.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import redis

from connector.errors import RetriableError

__all__ = ["Claim", "ClaimOutcome", "IdempotencyStore", "event_key"]

_DONE = b"done"

# Returns {outcome, pttl}: a fresh claim takes a lease; a live lease answers busy.
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'fresh', 0}
end
if value == 'done' then
  return {'done', 0}
end
return {'busy', redis.call('PTTL', KEYS[1])}
"""

# Deletes a lease (never a done mark); with a token, only that lease.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and value ~= 'done' and (ARGV[1] == '' or value == ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class ClaimOutcome(enum.Enum):
    FRESH = "fresh"  # go ahead and write, then call done (or release on failure)
    DONE = "done"  # already written: skip
    BUSY = "busy"  # another worker holds a live lease: retry later


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a claim."""

    key: str
    outcome: ClaimOutcome
    token: str | None = None  # identifies our lease (FRESH only)
    retry_after: float | None = None  # BUSY: seconds until the other lease expires


def event_key(source: str, entity: str, content: Any) -> str:
    """``source:entity:hash`` where hash covers ``content`` (any msgspec-encodable value)."""
    digest = hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()[:32]
    return f"{source}:{entity}:{digest}"


class IdempotencyStore:
    """Claims, leases and done marks under ``namespace``."""

    def __init__(
        self, client: redis.Redis, ttl_s: float = 7 * 86400, *, namespace: str = "connector:idem"
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)
        self.namespace = namespace
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    def claim(self, key: str, lease_s: float = 120.0) -> Claim:
        """Take a lease on ``key`` unless it is done or leased; atomic."""
        token = f"lease:{uuid.uuid4().hex}"
        lease_ms = max(1, int(lease_s * 1000))
        outcome, pttl = self._claim(keys=[self._key(key)], args=[token, lease_ms])
        match ClaimOutcome(outcome.decode()):
            case ClaimOutcome.FRESH:
                return Claim(key=key, outcome=ClaimOutcome.FRESH, token=token)
            case ClaimOutcome.DONE:
                return Claim(key=key, outcome=ClaimOutcome.DONE)
            case ClaimOutcome.BUSY:
                wait_s = max(int(pttl), 0) / 1000
                return Claim(key=key, outcome=ClaimOutcome.BUSY, retry_after=wait_s)
        raise AssertionError(outcome)  # pragma: no cover

    def done(self, key: str | Claim) -> None:
        """Record that the write happened (whoever held the lease)."""
        name = key.key if isinstance(key, Claim) else key
        self.client.set(self._key(name), _DONE, px=self.ttl_ms)

    def release(self, key: str | Claim) -> bool:
        """Give the lease back after a failed write; a Claim releases only its own lease."""
        name, token = (key.key, key.token or "") if isinstance(key, Claim) else (key, "")
        return bool(self._release(keys=[self._key(name)], args=[token]))

    def is_done(self, key: str) -> bool:
        return self.client.get(self._key(key)) == _DONE

    def run_once(self, key: str, write: Callable[[], object], *, lease_s: float = 120.0) -> bool:
        """Call ``write`` unless the key is done; False when skipped.

        Raises RetriableError (with ``retry_after``) while another worker holds
        the lease, so the message comes back once that lease has expired.
        """
        claim = self.claim(key, lease_s)
        if claim.outcome is ClaimOutcome.DONE:
            return False
        if claim.outcome is ClaimOutcome.BUSY:
            raise RetriableError(
                f"idempotency key {key} is being written by another worker",
                retry_after=claim.retry_after,
            )
        try:
            write()
        except BaseException:
            self.release(claim)
            raise
        self.done(claim)
        return True
