"""Every Redis key the connector owns, named in one place under one prefix."""

from __future__ import annotations

import re
import zlib

PREFIX = "connector"
STATES_PER_BUCKET = 32   # contacts per record hash (connector.state.layout)
PENDING_PER_BUCKET = 16  # contacts per pending hash
_NUMERIC = re.compile(r"0|[1-9][0-9]{0,17}")  # the same rule as the layout's Lua ``chunk_name``


def as_bytes(value: bytes | str) -> bytes:
    """Redis answers bytes unless a client decodes responses; accept both."""
    return value.encode() if isinstance(value, str) else value


def cursor(source: str) -> str:
    return f"{PREFIX}:cursor:{source}"


def agreed(contact_id: str) -> str:
    """A contact's state in the form from before the packed layout (read, then retired)."""
    return f"{PREFIX}:agreed:{contact_id}"


def _bucket(contact_id: str, size: int) -> str:
    if _NUMERIC.fullmatch(contact_id):
        return str(int(contact_id) // size)
    return f"x{zlib.crc32(contact_id.encode()) % 65536}"


def states(contact_id: str) -> str:
    """The hash that holds a contact's packed agreed state with those of its neighbours."""
    return f"{PREFIX}:states:{_bucket(contact_id, STATES_PER_BUCKET)}"


def pending(contact_id: str) -> str:
    """The hash that holds a contact's packed pending changes, while it has some."""
    return f"{PREFIX}:pending:{_bucket(contact_id, PENDING_PER_BUCKET)}"


def state_keys(contact_id: str) -> tuple[str, str, str]:
    """Every key one contact's state may be in: record bucket, pending bucket, old key."""
    return states(contact_id), pending(contact_id), agreed(contact_id)


def bucket_contacts(bucket_key: str, fields: list[bytes]) -> list[str]:
    """The ContactIds among a state bucket's hash fields (the others are chunks of their states)."""
    if bucket_key.rsplit(":", 1)[-1].startswith("x"):
        return [f.decode() for f in fields if not f.startswith(b"\0")]
    return [name for f in fields if _NUMERIC.fullmatch(name := f.decode())]


def lease(contact_id: str) -> str:
    """A writer's short lease on one contact, held from the ordering check to the commit."""
    return f"{PREFIX}:lease:{contact_id}"


def doubt(into: str, contact_id: str) -> str:
    """Opt-ins sent into ``into`` ("spotler"/"afas") not committed yet (``connector.state.doubt``)."""
    return f"{PREFIX}:doubt:{into}:{contact_id}"


def beaten(side: str, contact_id: str) -> str:
    """``side``'s values that lost a conflict to a change now on its way there (``connector.state.beaten``)."""
    return f"{PREFIX}:beaten:{side}:{contact_id}"


def run_outcome(run_id: str) -> str:
    """What the workers made of one poll's messages: written, superseded (a hash)."""
    return f"{PREFIX}:run:{run_id}:outcome"


def producer_lock(source: str) -> str:
    return f"{PREFIX}:lock:producer:{source}"


def alert(condition: str) -> str:
    """One alert condition's state (since, last sent, announced): ``connector.alerts.debounce``."""
    return f"{PREFIX}:alert:{condition}"


FIELDS = f"{PREFIX}:fields"                    # list: the field names packed states refer to by position
REJECTIONS = f"{PREFIX}:rejections"            # hash: "<source>:<contact>:<field>" -> record
REJECTIONS_BY_TIME = f"{PREFIX}:rejections:t"  # zset: same member -> epoch seconds
COUNTERS = f"{PREFIX}:counters"                # hash of running totals (synced, unchanged, ...)
FORGOTTEN = f"{PREFIX}:forgotten"              # zset: ContactId -> when it was forgotten (the tombstones)
DEPARTED = f"{PREFIX}:departed"                # zset: ContactId -> when a full pass first missed it in AFAS


def bounce_marker(contact_id: str, date: int) -> str:
    """A hard bounce of Spotler's feed already handed to AFAS (the feed windows overlap)."""
    return f"{PREFIX}:feed:bounce:{contact_id}:{date}"


def bounce_markers(contact_id_pattern: str) -> str:
    """A SCAN pattern for one contact's bounce markers."""
    return f"{PREFIX}:feed:bounce:{contact_id_pattern}:*"
