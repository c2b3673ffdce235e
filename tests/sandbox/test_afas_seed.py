"""Seed data: deterministic per seed, realistic, and holding the edge cases a real CRM holds."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import datetime

import pytest

from connector.sandbox.afas.catalogue import CUSTOMER_TYPE, EMAIL_BOUNCED, Catalogue
from connector.sandbox.afas.clock import AMSTERDAM
from connector.sandbox.afas.model import Store
from connector.sandbox.afas.seed import PRIVATE_ORGANISATION, seed_store

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=AMSTERDAM).timestamp()
SECTORS = [v.id for v in Catalogue.load().fields("KnOrganisation")["ViLb"].values or []]
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def seeded(contacts: int, seed: int = 1, *, edge_cases: bool = True) -> Store:
    store = Store()
    seed_store(store, contacts=contacts, seed=seed, now_epoch=NOW, sectors=SECTORS, edge_cases=edge_cases)
    return store


@pytest.fixture(scope="module")
def crm() -> Store:
    return seeded(2000, seed=42)


def dump(store: Store) -> list[tuple[object, ...]]:
    return [
        (c.cd_id, c.kind, c.org, c.person, sorted(c.fields.items()), c.modified) for c in store.contacts.values()
    ] + [(p.bc_co, sorted(p.fields.items()), p.modified) for p in store.persons.values()]


def test_same_seed_same_crm_other_seed_other_crm() -> None:
    assert dump(seeded(300, 5)) == dump(seeded(300, 5))
    assert dump(seeded(300, 5)) != dump(seeded(300, 6))


def test_exact_number_of_rows_and_kinds(crm: Store) -> None:
    assert len(crm.contacts) == 2000
    kinds = Counter(c.kind for c in crm.contacts.values())
    assert set(kinds) == {"PRS", "AFD", "PER"}
    assert kinds["AFD"] == kinds["PER"] == 8
    assert all(c.person is None for c in crm.contacts.values() if c.kind == "AFD")
    assert all(c.org is None for c in crm.contacts.values() if c.kind == "PER")
    private = next(o for o in crm.organisations.values() if o.fields["Nm"] == PRIVATE_ORGANISATION)
    assert private.address is None
    assert len(crm.by_org[private.bc_co]) > 100


def test_persons_at_two_organisations(crm: Store) -> None:
    twice = [p for p, ids in crm.by_person.items() if len(ids) == 2]
    assert len(twice) >= 20
    for person in twice:
        orgs = {crm.contacts[i].org for i in crm.by_person[person]}
        assert len(orgs) == 2


def test_email_edge_cases(crm: Store) -> None:
    emails = [c.fields.get("EmAd") for c in crm.contacts.values()]
    missing = sum(e is None for e in emails)
    invalid = [e for e in emails if e is not None and not EMAIL.match(e)]
    assert 15 <= missing <= 30  # about 1 %
    assert 8 <= len(invalid) <= 20  # about 0.5 %: "jan@@example", "geen", ...
    shared = [e for e, n in Counter(e for e in emails if e).items() if n > 1]
    assert shared
    domains = {e.split("@")[-1] for e in emails if e and EMAIL.match(e)}
    assert all(re.search(r"(^|\.)example\.(com|nl|net|org)$", d) for d in domains)
    bounced = [c for c in crm.contacts.values() if c.fields[EMAIL_BOUNCED]]
    blocked = [c for c in crm.contacts.values() if c.fields["Bl"]]
    assert bounced
    assert 20 <= len(blocked) <= 60


def test_names_addresses_and_odd_values(crm: Store) -> None:
    last_names = [p.fields["LaNm"] for p in crm.persons.values()]
    first_names = {p.fields["FiNm"] for p in crm.persons.values()}
    assert {"Jeroen", "Anaïs"} <= first_names
    assert {"Çelik", "Ó Súilleabháin"} <= set(last_names)
    assert {"van der", "de"} <= {p.fields.get("Is") for p in crm.persons.values()}
    assert max(len(n) for n in last_names) == 80  # KnPerson.LaNm holds at most 80
    assert max(len(o.fields["Nm"]) for o in crm.organisations.values()) == 255
    texts = [p.fields["FiNm"] + p.fields["LaNm"] for p in crm.persons.values()]
    assert any(any(ord(ch) >= 0x1F300 for ch in t) for t in texts)  # emoji
    assert any(any(unicodedata.combining(ch) for ch in t) for t in texts)  # combining marks
    assert any(any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in t) for t in texts)  # RTL
    for org in crm.organisations.values():
        if org.address is None:
            continue
        assert re.fullmatch(r"[1-9]\d{3} [A-Z]{2}", org.address["ZpCd"])
        assert org.address["ZpCd"][-2:] not in ("SA", "SD", "SS")
        assert org.fields.get("ViLb") in (None, *SECTORS)
        assert org.fields.get(CUSTOMER_TYPE) in (None, "Klant", "Prospect", "Partner", "Leverancier", "Oud-klant")


def test_modification_times_spread_over_the_past(crm: Store) -> None:
    now = datetime.fromtimestamp(NOW, AMSTERDAM).replace(tzinfo=None)
    stamps = [c.modified for c in crm.contacts.values()]
    assert all(s < now for s in stamps)
    assert (now - min(stamps)).days > 600
    assert len({s.year for s in stamps}) >= 2
    assert all(c.created <= c.modified for c in crm.contacts.values())


def test_without_edge_cases_every_email_is_valid() -> None:
    store = seeded(500, 3, edge_cases=False)
    assert all(EMAIL.match(c.fields["EmAd"]) for c in store.contacts.values() if c.kind == "PRS")
    assert not any(c.fields["Bl"] for c in store.contacts.values())
    assert {c.kind for c in store.contacts.values()} == {"PRS"}


@pytest.mark.parametrize("contacts", [0, 1, 19, 20, 57])
def test_small_seeds(contacts: int) -> None:
    assert len(seeded(contacts).contacts) == contacts
