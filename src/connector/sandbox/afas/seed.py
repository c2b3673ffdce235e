"""Deterministic seed data: a CRM as it looks after years of use, edge cases included.

The same (contacts, seed) always yields the same organisations, persons,
contacts, names and e-mail addresses; only the modification timestamps move
with the sandbox clock (they are spread over the two years before "now").
Edge cases (``edge_cases=True``): contacts without an e-mail (~1 %), with an
invalid one (~0.5 %), pairs sharing one address, blocked and bounced
contacts, very long values, odd Unicode, persons who are contacts at two
organisations, private persons under the fictitious organisation
"Particulieren", departments without a person (AFD) and persons without an
organisation (PER).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from connector.sandbox.afas import names
from connector.sandbox.afas.catalogue import (
    CUSTOMER_TYPE,
    EMAIL_BOUNCED,
    NEWSLETTER,
    PRODUCT_NEWS,
)
from connector.sandbox.afas.clock import LocalTimes
from connector.sandbox.afas.model import Contact, Organisation, Person, Store

__all__ = ["PRIVATE_ORGANISATION", "seed_store"]

T = TypeVar("T")
PRIVATE_ORGANISATION = "Particulieren"
_TWO_YEARS_MS = 730 * 86_400_000
_POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
_NOT_POSTCODES = frozenset({"SA", "SD", "SS"})


class _Seeder:
    def __init__(self, store: Store, seed: int, now_epoch: float, sectors: Sequence[str]) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.now_ms = int(now_epoch * 1000)
        self.local = LocalTimes()
        self.ages = [timedelta(milliseconds=int(self.rng.random() * _TWO_YEARS_MS)) for _ in range(997)]
        self.sectors = list(sectors)
        self.slugs: dict[str, str] = {}
        self.emails: set[str] = set()
        self.locals: dict[tuple[str, str, str], str] = {}

    def times(self) -> tuple[datetime, datetime]:
        """(created, modified): modified within two years back, created up to two years before."""
        r = self.rng.random
        modified = self.local(self.now_ms - int(r() * _TWO_YEARS_MS) - 60_000)
        return modified - self.ages[int(r() * len(self.ages))], modified

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.rng.random() * len(seq))]

    def between(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def slug(self, text: str) -> str:
        found = self.slugs.get(text)
        if found is None:
            ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
            found = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"
            self.slugs[text] = found
        return found

    def unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email

    def organisation(self, name: str | None = None) -> Organisation:
        rng = self.rng
        if name is None:
            prefix, last = self.pick(names.LAST_NAMES)
            core = f"{prefix} {last}".strip()
            name = f"{core[0].upper()}{core[1:]} {self.pick(names.COMPANY_FORMS)}"
            city, low, high = self.pick(names.CITIES)
            letters = "SS"
            while letters in _NOT_POSTCODES:
                letters = "".join(rng.choices(_POSTCODE_LETTERS, k=2))
            visit: dict[str, Any] = {
                "CoId": "NL",
                "PbAd": False,
                "Ad": self.pick(names.STREETS),
                "HmNr": self.between(1, 250),
                "ZpCd": f"{self.between(low, high)} {letters}",
                "Rs": city,
            }
            if rng.random() < 0.15:
                visit["HmAd"] = self.pick(("a", "b", "bis", "-2", "hs", "A-1"))
            address: dict[str, Any] | None = visit
            fields: dict[str, Any] = {"Nm": name}
            if rng.random() < 0.95:
                fields["ViLb"] = self.pick(self.sectors)
            if rng.random() < 0.95:
                fields[CUSTOMER_TYPE] = self.pick(names.CUSTOMER_TYPES)
            if rng.random() < 0.6:
                fields["CcNr"] = str(self.between(10_000_000, 99_999_999))
        else:
            address, fields = None, {"Nm": name, CUSTOMER_TYPE: "Particulier"}
        created, modified = self.times()
        store = self.store
        org = Organisation(
            bc_id=store.new_bc_id(),
            bc_co=store.new_number(),
            fields=fields,
            address=address,
            created=created,
            modified=modified,
        )
        store.add_organisation(org)
        return org

    def person(self) -> Person:
        rng = self.rng
        first, gender = self.pick(names.FIRST_NAMES)
        prefix, last = self.pick(names.LAST_NAMES)
        initials = first[0] + "."
        if rng.random() < 0.25:
            initials += self.pick("ACEHJKLMPRSTW") + "."
        fields: dict[str, Any] = {
            "FiNm": first,
            "CaNm": first,
            "In": initials,
            "LaNm": last,
            "ViGe": gender,
        }
        if prefix:
            fields["Is"] = prefix
        created, modified = self.times()
        store = self.store
        person = Person(
            bc_id=store.new_bc_id(),
            bc_co=store.new_number(),
            fields=fields,
            created=created,
            modified=modified,
        )
        store.add_person(person)
        return person

    def contact(self, kind: str, org: Organisation | None, person: Person | None) -> Contact:
        rng = self.rng
        fields: dict[str, Any] = {
            "ViKc": kind,
            NEWSLETTER: rng.random() < 0.55,
            PRODUCT_NEWS: rng.random() < 0.25,
            "Bl": False,
            EMAIL_BOUNCED: False,
        }
        if org is None or org.address is None:
            domain = self.pick(names.PRIVATE_DOMAINS)
        else:
            domain = f"{self.slug(org.fields['Nm'])}.example.nl"
        if person is not None:
            p = person.fields
            names_key = (p["FiNm"], p.get("Is", ""), p["LaNm"])
            local = self.locals.get(names_key)
            if local is None:
                local = ".".join(self.slug(x) for x in names_key if x).replace("-", ".")
                self.locals[names_key] = local
            fields["EmAd"] = self.unique_email(local, domain)
            if rng.random() < 0.7:
                fields["TeNr"] = f"06-{self.between(10_000_000, 99_999_999)}"
        else:
            department = self.pick(names.DEPARTMENTS)
            fields["ExAd"] = department
            fields["EmAd"] = self.unique_email(self.slug(department), domain)
            fields["TeNr"] = f"0{self.between(10, 99)}-{self.between(1_000_000, 9_999_999)}"
        created, modified = self.times()
        contact = Contact(
            cd_id=self.store.new_cd_id(),
            kind=kind,
            org=org.bc_co if org else None,
            person=person.bc_co if person else None,
            fields=fields,
            created=created,
            modified=modified,
        )
        self.store.add_contact(contact)
        return contact


def seed_store(
    store: Store,
    *,
    contacts: int,
    seed: int,
    now_epoch: float,
    sectors: Sequence[str],
    edge_cases: bool = True,
) -> None:
    """Fill an empty store with ``contacts`` GetConnector rows (PRS, AFD and PER contacts)."""
    s = _Seeder(store, seed, now_epoch, sectors)
    rng = s.rng
    few = max(1, contacts // 250) if edge_cases and contacts >= 20 else 0
    n_private = contacts * 8 // 100
    kinds = ["AFD"] * few + ["PER"] * few + ["PRIVATE"] * n_private
    kinds += ["PRS"] * (contacts - len(kinds))
    rng.shuffle(kinds)
    n_orgs = max(1, kinds.count("PRS") // 5)
    private_org = s.organisation(PRIVATE_ORGANISATION)
    orgs = [s.organisation() for _ in range(n_orgs)]
    twice = 0.03 if edge_cases else 0.0
    prs_links: list[tuple[Contact, Person]] = []
    made: list[Contact] = []
    for index, kind in enumerate(kinds):
        if kind == "AFD":
            made.append(s.contact("AFD", rng.choice(orgs), None))
        elif kind == "PER":
            made.append(s.contact("PER", None, s.person()))
        elif kind == "PRIVATE":
            made.append(s.contact("PRS", private_org, s.person()))
        else:
            org = orgs[index % n_orgs] if index < n_orgs else orgs[int(n_orgs * rng.random() ** 1.6)]
            if prs_links and rng.random() < twice:
                first, person = prs_links[rng.randrange(len(prs_links))]
                if first.org != org.bc_co and len(store.by_person[person.bc_co]) == 1:
                    made.append(s.contact("PRS", org, person))
                    continue
            person = s.person()
            contact = s.contact("PRS", org, person)
            prs_links.append((contact, person))
            made.append(contact)
    if edge_cases and contacts >= 20:
        _edge_cases(s, [c for c, _ in prs_links], made)


def _edge_cases(s: _Seeder, prs: list[Contact], everyone: list[Contact]) -> None:
    rng, store, n = s.rng, s.store, len(everyone)
    no_email, invalid, pairs = max(1, n // 100), max(1, n // 200), max(1, n // 500)
    needed = no_email + invalid + 3 * pairs + 8
    if len(prs) < needed:
        return
    take = iter(rng.sample(prs, needed))
    for contact in [next(take) for _ in range(no_email)]:
        contact.fields.pop("EmAd", None)
    for contact in [next(take) for _ in range(invalid)]:
        contact.fields["EmAd"] = s.pick(names.INVALID_EMAILS)
    for _ in range(pairs):
        owner, sharer = next(take), next(take)
        sharer.fields["EmAd"] = owner.fields.get("EmAd") or "gedeeld@example.nl"
    for contact in [next(take) for _ in range(pairs)]:
        contact.fields[EMAIL_BOUNCED] = True
    for contact in rng.sample(everyone, max(1, n // 50)):
        contact.fields["Bl"] = True
    odd = [next(take) for _ in range(6)]
    for contact, first, last in zip(odd, names.ODD_FIRST_NAMES, names.ODD_LAST_NAMES, strict=True):
        assert contact.person is not None
        person = store.persons[contact.person]
        person.fields["FiNm"], person.fields["LaNm"] = first, last
    long_one, long_two = next(take), next(take)
    assert long_one.org is not None
    assert long_one.person is not None
    store.organisations[long_one.org].fields["Nm"] = ("Stichting Samenwerkende " * 12)[:254] + "X"
    store.persons[long_one.person].fields["LaNm"] = ("Lang" * 20)[:80]
    long_two.fields["EmAd"] = "a" * 64 + "@" + "sub." * 20 + "example.nl"
