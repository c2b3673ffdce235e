"""When the AFAS producer takes a row's edits to have been made: its stamp, unless our own write set it."""

from __future__ import annotations

from connector.producers.afas import _afas_edit_time
from connector.state.agreed import ContactState, FieldState
from connector.sync.rows import ContactRecord

AGREED = {"lastName": "Berg", "permissions.1": False}


def row(stamp: int, **values: object) -> ContactRecord:
    return ContactRecord(contact_id="1", person_id="P1", organisation_id="O1", blocked=False, modified="",
                         values={**AGREED, **values}, stamp=stamp)  # type: ignore[arg-type]


def state(wa: int) -> ContactState:
    fields = {"lastName": FieldState("Berg", 50_000, "a"), "permissions.1": FieldState(False, 80_000, "s")}
    return ContactState(f=fields, wa=wa)


def test_a_row_stamped_after_our_last_write_keeps_its_stamp() -> None:
    assert _afas_edit_time(row(300_000, **{"permissions.1": True}), state(wa=100_000), AGREED) == 300_000


def test_a_row_our_write_may_have_stamped_counts_from_what_was_agreed_on_its_edited_fields() -> None:
    # Our write committed at 300.4 s; AFAS stamps to the second: 300 s. The opt-in in it was made earlier.
    assert _afas_edit_time(row(300_000, **{"permissions.1": True}), state(wa=300_400), AGREED) == 80_000
    assert _afas_edit_time(row(300_000), state(wa=300_400), AGREED) == 300_000  # nothing unsynced: no matter
    assert _afas_edit_time(row(300_000, **{"permissions.1": True}), None, None) == 300_000
