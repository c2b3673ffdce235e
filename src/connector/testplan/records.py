"""The test plan's own AFAS records: a test organisation with one contact person, built from the mapping."""

from __future__ import annotations

from typing import Any

import msgspec

from connector.clients.afas import AfasClient
from connector.schemas.afas import UpdateResult
from connector.schemas.mapping import FieldMap, Mapping, WriteTarget

__all__ = ["PlanAfasClient", "PlanFields", "TestRecord", "organisation_body"]

_EMAIL_TARGET = WriteTarget("KnContact", "EmAd")


class TestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The values the plan creates in AFAS for one run."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str
    organisation_name: str
    email: str
    first_name: str = "Test"
    last_name: str = "Testplan"
    city: str = "Testplanstad"

    @classmethod
    def for_run(cls, run_id: str) -> TestRecord:
        # example.com: reserved, never delivered, and valid for Spotler's e-mail check.
        return cls(run_id=run_id, organisation_name=f"Connector testplan {run_id}",
                   email=f"testplan+{run_id}@example.com")

    def __repr__(self) -> str:
        return f"TestRecord(run_id={self.run_id!r})"


class PlanFields(msgspec.Struct, frozen=True, kw_only=True):
    """The mapped fields the steps use; None when the mapping has no such field."""

    email: WriteTarget
    last_name: FieldMap | None  # written back through KnPerson.LaNm
    permission: FieldMap | None  # the first yes/no permission field with a write-back target
    permissions: list[FieldMap]
    city: FieldMap | None  # a one-way address field

    @classmethod
    def of(cls, mapping: Mapping) -> PlanFields:
        fields = mapping.fields
        email = mapping.field_for_property("email")
        bits = [f for f in fields if f.permission_bit is not None and f.target is not None]
        one_way = [f for f in fields if f.target is None and f.type == "text" and f.permission_bit is None]
        city = next((f for f in one_way if f.name == "city"), None) or next(
            (f for f in one_way if "city" in f.column.lower()), None)
        return cls(
            email=(email.target if email is not None and email.target is not None else _EMAIL_TARGET),
            last_name=next((f for f in fields if str(f.target) == "KnPerson.LaNm"), None),
            permission=bits[0] if bits else None,
            permissions=bits,
            city=city,
        )


def organisation_body(record: TestRecord, fields: PlanFields) -> dict[str, Any]:
    """``POST KnOrganisation``: a new organisation (visit address in the test city) holding a new
    contact person with the test e-mail and every mapped permission on."""
    values: dict[str, dict[str, Any]] = {
        "KnOrganisation": {"MatchOga": "6", "AutoNum": True, "Nm": record.organisation_name},
        "KnContact": {"ViKc": "PRS"},
        "KnPerson": {"MatchPer": "7", "AutoNum": True, "FiNm": record.first_name, "LaNm": record.last_name},
    }
    values[fields.email.connector][fields.email.field] = record.email
    for field in fields.permissions:
        target = field.target
        if target is not None:
            values[target.connector][target.field] = True
    address = {"CoId": "NL", "PbAd": False, "Ad": "Teststraat", "HmNr": 1, "ZpCd": "1234 AB",
               "Rs": record.city, "ResZip": False}
    person = {"KnPerson": {"Element": {"Fields": values["KnPerson"]}}}
    contact = {"KnContact": {"Element": {"Fields": values["KnContact"], "Objects": [person]}}}
    return {"KnOrganisation": {"Element": {
        "Fields": values["KnOrganisation"],
        "Objects": [{"KnBasicAddressAdr": {"Element": {"Fields": address}}}, contact],
    }}}


class PlanAfasClient(AfasClient):
    """The AFAS client plus the one call only the test plan makes: an insert with nested objects."""

    def insert_nested(self, body: dict[str, Any]) -> UpdateResult:
        """``POST connectors/<root>`` with the body as given (``Objects`` included)."""
        root = next(iter(body))
        request = self._http.build_request(
            "POST", f"connectors/{root}", content=msgspec.json.encode(body),
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        response = self._call(request, f"AFAS POST connectors/{root}", writing=True)
        if not response.content.strip():
            return UpdateResult()
        try:
            return msgspec.json.decode(response.content, type=UpdateResult)
        except msgspec.DecodeError:
            return UpdateResult()
