"""Contacts the link synced that a full pass no longer finds in the GetConnector.

AFAS deletes leave no trace in a modification date, so only a full pass sees
them. A contact missing from the walk is looked up by its id before anything
happens to it (it may have been edited out of and back into view while the
walk ran). The mapping's ``deletions`` decides: ``ignore`` counts them,
``unsubscribe`` turns every permission bit off in Spotler (the contact stays:
Spotler has no delete), but never for more than ``max_share`` of the synced
contacts in one pass unless allowed (``connector resync --yes``): above that
``DeletionsHeld`` is raised and nobody is unsubscribed.

Whatever the policy, a gone contact is noted as *departed* (``connector.state.
departed``; not when more are gone than ``max_share`` without ``--yes``: a
broken filter must not start the clock for everyone). One still gone after
``FORGET_AFTER_DAYS``, looked up by id once more, is forgotten
(``forget_departed``): its state erased, a tombstone kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.clients.afas import AfasClient
from connector.errors import ConnectorError
from connector.schemas.events import ContactChange, Value
from connector.schemas.mapping import Mapping
from connector.state.agreed import AgreedStore
from connector.state.departed import Departed
from connector.state.forget import erase

__all__ = ["DeletionsHeld", "forget_departed", "gone_contacts", "unsubscribes"]


class DeletionsHeld(ConnectorError):
    """A full pass found more contacts gone than one pass may unsubscribe."""


def gone_contacts(
    client: AfasClient, getconnector: str, mapping: Mapping, agreed: AgreedStore, present: Iterable[str],
) -> tuple[list[str], int]:
    """The synced contacts that are really gone (confirmed by id), and how many were synced."""
    seen = set(present)
    synced = agreed.contact_ids()
    missing = [cid for cid in synced if cid not in seen]
    found = client.rows_by_ids(getconnector, key=mapping.keys.contact_id, ids=missing) if missing else {}
    return [cid for cid in missing if cid not in found], len(synced)


def unsubscribes(
    gone: list[str], synced: int, mapping: Mapping, agreed: AgreedStore, *, stamp: int, max_share: float,
    allow: bool,
) -> list[ContactChange]:
    """Every permission bit off for the gone contacts that still have one on; DeletionsHeld above the share."""
    share = len(gone) / max(1, synced)
    if share > max_share and not allow:
        raise DeletionsHeld(
            f"{len(gone)} of {synced} synced contacts ({share:.1%}) are no longer in the GetConnector, "
            f"more than the {max_share:.0%} one pass may unsubscribe (DELETIONS_MAX_SHARE): "
            "nothing was unsubscribed. Check the GetConnector's filter and the token's rights; "
            "if the deletions are real, run `connector resync --yes`."
        )
    bits = [f.name for f in mapping.fields if f.permission_bit is not None]
    changes: list[ContactChange] = []
    for cid, state in zip(gone, agreed.states(gone), strict=True):
        if state is None:
            continue
        off: dict[str, Value] = {n: False for n in bits if state.values.get(n) is not False}
        if off:
            changes.append(ContactChange(
                contact_id=cid, changes=off, person_id=state.p or "", organisation_id=state.o or "",
                blocked=True, stamps=dict.fromkeys(off, stamp), bases={n: state.stamp(n) for n in off},
            ))
    return changes


def forget_departed(
    client: AfasClient, getconnector: str, mapping: Mapping, departed: Departed, *, after_s: float, now: float,
) -> list[str]:
    """Forget the contacts gone for ``after_s`` that AFAS still does not list; those it lists are back."""
    due = departed.due(after_s, now)
    if not due:
        return []
    found = client.rows_by_ids(getconnector, key=mapping.keys.contact_id, ids=due)
    departed.back([cid for cid in due if cid in found])
    gone = [cid for cid in due if cid not in found]
    if gone:
        erase(departed.client, gone, now=now)
    return gone
