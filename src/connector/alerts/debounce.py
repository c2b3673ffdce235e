"""Per-condition alert state in Redis, so every evaluating process agrees on what to send.

A condition's hash (``connector:alert:<condition>:<subject>``) holds ``since``
(when it was first seen holding), ``sent`` (when its last firing message was
claimed) and ``announced`` (a firing message went out for this episode). One
Lua script moves it on and says what to send, atomically, so two producers
evaluating at the same moment claim a message once between them:

- holding, past its grace, and no firing message claimed for ``repeat_s``:
  **fire** (the first of the episode) or **remind** (it still holds);
- cleared after it was announced: **recover**, once; an episode that was never
  announced (within its grace, or inside the window of an earlier one) clears
  silently;
- otherwise nothing.

``sent`` outlives the episode by ``repeat_s``, so a condition that flaps is
announced at most once per ``repeat_s`` (its recovery then follows once).
"""

from __future__ import annotations

from typing import Literal

import redis

from connector.state import keys

__all__ = ["Action", "AlertState"]

Action = Literal["fire", "remind", "recover"]

# KEYS[1] the condition's hash; ARGV: holding (1/0), now, repeat_s, grace_s, ttl_ms.
# Returns {action, since}: 0 nothing, 1 fire, 2 remind, 3 recover; since in whole seconds.
_STEP = """
local holding = ARGV[1] == '1'
local now = tonumber(ARGV[2])
local since = tonumber(redis.call('hget', KEYS[1], 'since'))
local sent = tonumber(redis.call('hget', KEYS[1], 'sent'))
local announced = redis.call('hget', KEYS[1], 'announced') == '1'
if holding then
  if not since then
    since = now
    redis.call('hset', KEYS[1], 'since', ARGV[2])
    redis.call('persist', KEYS[1])
  end
  if now - since < tonumber(ARGV[4]) then return {0, since} end
  if sent and now - sent < tonumber(ARGV[3]) then return {0, since} end
  redis.call('hset', KEYS[1], 'sent', ARGV[2], 'announced', '1')
  if announced then return {2, since} end
  return {1, since}
end
if not since then return {0, 0} end
redis.call('hdel', KEYS[1], 'since', 'announced')
if sent then redis.call('pexpire', KEYS[1], ARGV[5]) end
if announced then return {3, since} end
return {0, since}
"""
_ACTIONS: dict[int, Action] = {1: "fire", 2: "remind", 3: "recover"}


class AlertState:
    """The debounce of every condition, kept in Redis."""

    def __init__(self, client: redis.Redis, *, repeat_s: float) -> None:
        self.client = client
        self.repeat_s = repeat_s
        self._step = client.register_script(_STEP)

    def step(self, key: str, *, holding: bool, now: float, grace_s: float = 0.0) -> tuple[Action | None, float]:
        """Record what was seen; the message to send now (if any) and since when the condition holds."""
        ttl_ms = max(1, int(self.repeat_s * 1000))
        code, since = self._step(keys=[keys.alert(key)],
                                 args=[1 if holding else 0, repr(float(now)), self.repeat_s, grace_s, ttl_ms])
        return _ACTIONS.get(int(code)), float(since)
