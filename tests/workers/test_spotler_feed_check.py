"""When a write first looks at the target: late changes, and every opt-in (Spotler's feed, AFAS's row)."""

from __future__ import annotations

import time

import pytest

from connector.schemas.events import AfasChange, ContactChange, SpotlerBatch
from connector.workers.actors_afas import needs_row_check
from connector.workers.actors_spotler import needs_feed_check

LATE_MS = 3_000


def batch(changes: dict[str, object], *, age_ms: int = 0, new: bool = False) -> SpotlerBatch:
    stamp = int(time.time() * 1000) - age_ms
    return SpotlerBatch(changes=[ContactChange(
        contact_id="7", changes=changes, new=new,  # type: ignore[arg-type]
        stamps=dict.fromkeys(changes, stamp), bases=dict.fromkeys(changes, 0),
    )])


@pytest.mark.parametrize(("changes", "age_ms", "new", "expected"), [
    ({"firstName": "Anna"}, 0, False, False),           # fresh, no opt-in: written blind
    ({"permissions.2": False}, 0, False, False),        # an opt-out can only make things safer
    ({"permissions.2": True}, 0, False, True),          # a fresh opt-in: an unsubscribe may have come since
    ({"firstName": "Anna", "permissions.1": True}, 0, False, True),
    ({"permissions.2": True}, 0, True, False),          # a new contact has no unsubscribe to overwrite
    ({"firstName": "Anna"}, 60_000, False, True),       # waited: a retry, a backlog
])
def test_a_batch_looks_at_spotler_first_when_it_waited_or_opts_in(
    changes: dict[str, object], age_ms: int, new: bool, expected: bool
) -> None:
    assert needs_feed_check(batch(changes, age_ms=age_ms, new=new), LATE_MS) is expected


@pytest.mark.parametrize(("changes", "age_ms", "expected"), [
    ({"lastName": "Berg"}, 0, False),                      # fresh, no opt-in: written blind
    ({"permissions.1": False}, 0, False),                  # an opt-out can only make things safer
    ({"permissions.1": True}, 0, True),                    # an AFAS user may have opted out since
    ({"lastName": "Berg", "permissions.2": True}, 0, True),
    ({"lastName": "Berg"}, 60_000, True),                  # waited: a retry, a backlog
])
def test_an_afas_write_reads_the_row_first_when_it_waited_or_opts_in(
    changes: dict[str, object], age_ms: int, expected: bool
) -> None:
    stamp = int(time.time() * 1000) - age_ms
    change = AfasChange(contact_id="7", person_id="P1", organisation_id="O1", changes=changes,  # type: ignore[arg-type]
                        stamps=dict.fromkeys(changes, stamp), bases=dict.fromkeys(changes, 0))
    assert needs_row_check(change, LATE_MS) is expected
