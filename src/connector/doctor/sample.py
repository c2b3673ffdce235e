"""A sample of GetConnector rows, decoded as the producer decodes them: how many are unusable, and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

from connector.clients.afas import AfasClient, page_size_for
from connector.clients.afas_paging import keyset_filter
from connector.doctor.calls import attempt
from connector.doctor.report import Check, fail, ok, warn
from connector.errors import ConnectorError
from connector.schemas.mapping import Mapping
from connector.sync.rows import ContactRecord, decode_row

__all__ = ["SAMPLE", "check_sample", "sample_rows"]

SAMPLE = "sample rows"
_EXAMPLES = 3

# decode_row's reasons -> (which rows, the rule they break and what to do about it)
_RULES: dict[str, tuple[str, str]] = {
    "missing contact id": (
        "without a contact id",
        "every row needs its ContactId: check the key column of the GetConnector",
    ),
    "contact has no organisation": (
        "without an organisation",
        "every contact must hang under an organisation: put private persons under a (fictitious) "
        "organisation such as 'Particulieren' in AFAS",
    ),
    "contact has no person": (
        "without a person",
        "only contact persons (a person at an organisation) are synced: leave departments and "
        "organisation contacts out of the GetConnector, or accept that they are rejected",
    ),
    "no e-mail address": (
        "without an e-mail address",
        "contacts without an e-mail address are not synced: fill in the contact's e-mail in AFAS",
    ),
    "invalid e-mail address": (
        "with an invalid e-mail address",
        "e-mail addresses must be valid: correct them in AFAS",
    ),
}


def _rule(reason: str) -> tuple[str, str]:
    for prefix, rule in _RULES.items():
        if reason.startswith(prefix):
            return rule
    return f"rejected ({reason})", f"correct these rows in AFAS ({reason})"


def sample_rows(
    client: AfasClient, connector_id: str, mapping: Mapping, limit: int, columns: int
) -> Iterator[dict[str, Any]]:
    """The first ``limit`` rows in ContactId order, in as few calls as AFAS's sizing allows.

    Paged by key (``ContactId > last`` at skip 0), as the producer reads, so no
    page pays for a deep skip. Rows without a ContactId sort first; a page that
    ends on one cannot be followed by key, so the sample ends there.
    """
    size = max(1, min(limit, page_size_for(columns)))
    key = mapping.keys.contact_id
    seen = 0
    after: object | None = None
    while seen < limit:
        take = min(size, limit - seen)
        flt = keyset_filter(None, key, after)
        page = attempt(partial(client.get_page, connector_id, filter=flt, order_by=[key], take=take))
        yield from page
        seen += len(page)
        if len(page) < take:
            return
        after = page[-1].get(key)
        if after is None or after == "":
            return


def check_sample(client: AfasClient, connector_id: str, mapping: Mapping, limit: int, columns: int) -> Check:
    """Warn about rows that would be rejected; fail only when no sampled row is usable."""
    broken: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], list[str]] = {}
    total = 0
    try:
        for row in sample_rows(client, connector_id, mapping, limit, columns):
            total += 1
            decoded = decode_row(row, mapping)
            if isinstance(decoded, ContactRecord):
                continue
            rule = _rule(decoded.reason)
            broken[rule] += 1
            ids = examples.setdefault(rule, [])
            if decoded.contact_id is not None and len(ids) < _EXAMPLES:
                ids.append(decoded.contact_id)
    except ConnectorError as exc:
        return fail(SAMPLE, f"reading GetConnector {connector_id} failed: {exc}", "check the GetConnector in AFAS")
    if total == 0:
        return warn(SAMPLE, f"GetConnector {connector_id} returned no rows", "check the GetConnector's filters in AFAS")
    if not broken:
        return ok(SAMPLE, f"{_rows(total)} sampled, all usable")
    usable = total - sum(broken.values())
    parts = []
    for rule, count in broken.most_common():
        ids = examples[rule]
        parts.append(f"{rule[0]}: {count}" + (f" (e.g. ContactId {', '.join(ids)})" if ids else ""))
    detail = f"{_rows(total)} sampled, {usable} usable; " + "; ".join(parts)
    fix = "; ".join(why for _, why in broken)
    if usable == 0:
        return fail(SAMPLE, detail + "; no sampled row can be synced", fix)
    return warn(SAMPLE, detail + " (these rows are rejected, the rest syncs)", fix)


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
