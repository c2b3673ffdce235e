"""The values that lost a conflict, kept while the winner is on its way over them.

Both systems stamp more than a field: AFAS a row, Spotler a contact. When a
conflict is settled (say Spotler's last name wins over AFAS's), the winner is
enqueued for AFAS; until it lands, AFAS still shows the losing value, and any
other edit of that row moves the row's stamp. A producer deciding the contact
again in that time would see the losing value as an AFAS edit *newer* than the
winner and settle the conflict the other way: the newer edit is lost for good,
since the change it now loses to supersedes the one on its way.

So the sink notes each conflict's losing value (``connector:beaten:<side>:<ContactId>``,
after the enqueue, as every record is), and a producer reads a side's value
that equals the note, while a change of that field is on its way into that
side, as the agreed value: no new edit there. A genuine later edit on that
side has another value and is decided as usual. Notes live as long as a
pending change can (6 h), and only for conflicts, so they cost little.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec
import redis

from connector.schemas.events import Value
from connector.state import keys
from connector.state.agreed import PENDING_MAX_AGE_S, ContactState
from connector.sync.merge import Conflict

__all__ = ["BeatenValues", "unbeaten"]

_encode = msgspec.msgpack.encode
_decode = msgspec.msgpack.Decoder(Value).decode


class BeatenValues:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def note(self, conflicts: Iterable[Conflict]) -> None:
        """Record each conflict's losing value under the side it lost on (one round trip)."""
        by_key: dict[str, dict[str, bytes]] = {}
        for c in conflicts:
            side, value = ("afas", c.afas_value) if c.winner == "spotler" else ("spotler", c.spotler_value)
            if value != c.value:
                by_key.setdefault(keys.beaten(side, c.contact_id), {})[c.field] = _encode(value)
        if not by_key:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, fields in by_key.items():
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, int(PENDING_MAX_AGE_S))
        pipe.execute()

    def get_many(self, side: str, contact_ids: Sequence[str]) -> list[dict[str, Value]]:
        if not contact_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for cid in contact_ids:
            pipe.hgetall(keys.beaten(side, cid))
        return [{keys.as_bytes(n).decode(): _decode(keys.as_bytes(v)) for n, v in raw.items()}
                for raw in pipe.execute()]

    @staticmethod
    def erase(client: redis.Redis, contact_ids: Iterable[str]) -> int:
        """Delete the contacts' notes on both sides (``connector forget``)."""
        found = [keys.beaten(side, cid) for cid in contact_ids for side in ("spotler", "afas")]
        return int(client.delete(*found)) if found else 0


def unbeaten(
    side: str, values: Mapping[str, Value], before: Mapping[str, Value] | None, state: ContactState | None,
    notes: Mapping[str, Value], now: float,
) -> dict[str, Value]:
    """``side``'s values, with a value that lost a conflict to a change still on its way there read as agreed."""
    if not notes or before is None or state is None:
        return dict(values)
    pending = state.pending(side, now)
    return {n: before.get(n) if (n in notes and n in pending and v == notes[n] and pending[n].value != v) else v
            for n, v in values.items()}
