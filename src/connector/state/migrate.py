"""Rewrite the agreed states of an earlier version in the packed layout (``connector migrate``).

An earlier version kept one string per contact, ``connector:agreed:<ContactId>``
(JSON, or before per-field stamps a msgpack map). The link reads those where
they are and packs a contact the first time it writes it
(``connector.state.layout``), so nothing needs this to run; it frees the
memory of the contacts that are not written for a while.

Each contact is rewritten by one Lua call that reads the old key, merges it
with a packed state the contact may already have (per field the newer stamp
wins), stores the result packed and deletes the old key (or the marker the
link left there when it packed the contact itself), so it is safe while this
version's producers and workers run: a contact is never half-migrated, and a write that
comes between two batches finds the contact in one form or the other. A
forgotten contact's old key (``connector.state.tombstones``) is deleted, not
migrated. SCAN may miss a key created while it runs (an earlier version's
process still writing), so passes repeat until one finds nothing: running it
again migrates nothing and reports so.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import redis

from connector.state import keys, layout

__all__ = ["MigrateReport", "migrate", "old_states"]

_BATCH = 500
_MAX_PASSES = 10


class MigrateReport(msgspec.Struct, kw_only=True):
    """What ``migrate`` did: counts only (no ContactId, no value)."""

    migrated: int = 0  # old keys rewritten in the packed layout
    retired: int = 0  # markers of contacts the link had packed already (``layout.RETIRED``), deleted
    forgotten: int = 0  # old keys of forgotten contacts, deleted
    vanished: int = 0  # old keys another process retired between the scan and the rewrite
    passes: int = 0
    left: int = 0  # old keys found by a last scan (an earlier version still writing); 0 when done

    @property
    def done(self) -> bool:
        return self.left == 0


def _old_ids(client: redis.Redis) -> list[str]:
    prefix = len(keys.agreed(""))
    return [keys.as_bytes(k).decode()[prefix:] for k in client.scan_iter(match=keys.agreed("*"), count=1000)]


def old_states(client: redis.Redis) -> int:
    """How many old-form keys are left, states or markers (a SCAN)."""
    return len(_old_ids(client))


def migrate(client: redis.Redis, *, progress: Callable[[int], None] | None = None) -> MigrateReport:
    """Pack every old-form state; ``progress`` is called with the running count of contacts migrated."""
    script = client.register_script(layout.MIGRATE)
    report = MigrateReport()
    while report.passes < _MAX_PASSES:
        ids = _old_ids(client)
        if not ids:
            return report
        report.passes += 1
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            migrated, retired, absent, forgotten = script(
                keys=[keys.FIELDS, keys.FORGOTTEN, *(k for cid in chunk for k in keys.state_keys(cid))], args=chunk)
            report.migrated += int(migrated)
            report.retired += int(retired)
            report.vanished += int(absent)
            report.forgotten += int(forgotten)
            if progress is not None:
                progress(report.migrated)
    report.left = old_states(client)
    return report
