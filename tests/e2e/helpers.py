"""What the end-to-end tests compare: AFAS's rows, mapped, against Spotler's contacts."""

from __future__ import annotations

from typing import Any

import msgspec
import redis

from connector.clients.afas import AfasClient
from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.schemas.events import Value
from connector.schemas.mapping import Mapping, load_mapping
from connector.schemas.spotler import Contact
from connector.stack import Stack, wait_until
from connector.state.queues import outstanding
from connector.state.runs import RunHistory
from connector.sync.from_spotler import spotler_values as from_spotler
from connector.sync.rows import ContactRecord, Rejection, decode_row

MAPPING: Mapping = load_mapping(None)


def afas_expectation(stack: Stack) -> tuple[dict[str, ContactRecord], dict[str, Rejection]]:
    """Every row of the sandbox's GetConnector, decoded the way the producer decodes it."""
    valid: dict[str, ContactRecord] = {}
    rejected: dict[str, Rejection] = {}
    with AfasClient(f"{stack.afas_url}/ProfitRestServices", DEFAULT_TOKEN) as client:
        for page in client.iter_pages("Spotler_Contacts", order_by=["ContactId"], page_size=5000):
            for row in page:
                decoded = decode_row(row, MAPPING)
                if isinstance(decoded, ContactRecord):
                    valid[decoded.contact_id] = decoded
                else:
                    rejected[str(decoded.contact_id)] = decoded
    return valid, rejected


def spotler_contacts(stack: Stack) -> dict[str, dict[str, Any]]:
    return {c["externalId"]: c for c in stack.spotler("GET", "contacts")}


def spotler_values(contact: dict[str, Any]) -> dict[str, Value]:
    """A Spotler contact (as the control API shows it) in the mapping's Spotler-side names."""
    return from_spotler(msgspec.convert(contact, Contact), MAPPING)


def wait_for_quiet(
    stack: Stack, client: redis.Redis, *, polls_after: int = 1, timeout_s: float = 300,
    sources: tuple[str, ...] = ("afas",),
) -> None:
    """Wait until each producer finished ``polls_after`` more polls and the queues are drained."""
    history = RunHistory(client)
    for source in sources:
        seen = len(history.latest(source, limit=10_000))
        wait_until(lambda s=source, n=seen: len(history.latest(s, limit=10_000)) >= n + polls_after,  # type: ignore[misc]
                   timeout_s)
    wait_until(lambda: outstanding(client, "spotler") + outstanding(client, "afas") == 0, timeout_s, interval_s=0.2)
