"""The field mapping: a TOML file decoded into Structs, unknown keys rejected.

Each field names its GetConnector column, its Spotler property (or permission
bit), its type, where it is written back in AFAS (if it may be) and which side
wins a conflict. ``load_mapping`` also enforces the write-back rules of the
link, so a mapping that breaks them never starts a process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from connector.errors import ConfigError

__all__ = [
    "FORBIDDEN_WRITEBACK",
    "UPDATE_CONNECTORS",
    "BounceRule",
    "FieldMap",
    "Keys",
    "Mapping",
    "WriteTarget",
    "decode_mapping",
    "default_mapping_path",
    "load_mapping",
]

FieldType = Literal["text", "yesno", "tablelink"]
Owner = Literal["afas", "spotler", "newest"]
UPDATE_CONNECTORS = ("KnContact", "KnPerson", "KnOrganisation")

# Never written back to AFAS (connector-platform.md rule 6): company name and the
# address. Address fields live in the KnBasicAddress* sub-objects; a target there
# is refused whatever its field code.
FORBIDDEN_WRITEBACK: dict[str, str] = {
    "KnOrganisation.Nm": "company name",
    "KnOrganisation.Ad": "street",
    "KnOrganisation.HmNr": "house number",
    "KnOrganisation.HmAd": "house number addition",
    "KnOrganisation.ZpCd": "postal code",
    "KnOrganisation.Rs": "city",
}


class WriteTarget(msgspec.Struct, frozen=True):
    """Where a field goes in AFAS: an UpdateConnector and a field code."""

    connector: str
    field: str

    def __str__(self) -> str:
        return f"{self.connector}.{self.field}"


class FieldMap(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One mapped field."""

    column: str
    spotler_property: str | None = msgspec.field(default=None, name="property")
    permission_bit: int | None = None
    type: FieldType = "text"
    writeback: str | None = None
    owner: Owner = "afas"

    @property
    def name(self) -> str:
        """The Spotler side of the field, as it appears in diffs and logs."""
        return self.spotler_property if self.spotler_property is not None else f"permissions.{self.permission_bit}"

    @property
    def target(self) -> WriteTarget | None:
        if self.writeback is None:
            return None
        connector, _, field = self.writeback.partition(".")
        return WriteTarget(connector, field)


class Keys(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """GetConnector columns that identify a row and tell when it changed."""

    contact_id: str = "ContactId"
    person_id: str = "PersonNo"
    organisation_id: str = "OrganisationId"
    email: str = "Email"
    blocked: str | None = "Blocked"
    modified: list[str] = msgspec.field(
        default_factory=lambda: ["ContactModified", "PersonModified", "OrganisationModified"]
    )


class BounceRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a hard bounce in Spotler does in AFAS: a yes/no field, blocking, or nothing."""

    writeback: str | None = None
    block_contact: bool = False


class Mapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole mapping file."""

    fields: list[FieldMap]
    keys: Keys = msgspec.field(default_factory=Keys)
    bounce: BounceRule = msgspec.field(default_factory=BounceRule)
    deletions: Literal["ignore", "unsubscribe"] = "ignore"

    @property
    def columns(self) -> list[str]:
        """Every GetConnector column the link reads, keys first, without repeats."""
        keys = self.keys
        wanted = [keys.contact_id, keys.person_id, keys.organisation_id, keys.email]
        if keys.blocked:
            wanted.append(keys.blocked)
        wanted += [f.column for f in self.fields] + list(keys.modified)
        return list(dict.fromkeys(wanted))

    def field_for_property(self, name: str) -> FieldMap | None:
        return next((f for f in self.fields if f.name == name), None)


def _check(mapping: Mapping) -> Mapping:
    problems: list[str] = []
    seen: set[str] = set()
    for index, f in enumerate(mapping.fields):
        where = f"fields[{index}] (column {f.column!r})"
        if (f.spotler_property is None) == (f.permission_bit is None):
            problems.append(f"{where}: set exactly one of 'property' or 'permission_bit'")
        if f.permission_bit is not None and f.type != "yesno":
            problems.append(f"{where}: a permission bit maps a yes/no field, not {f.type!r}")
        if f.permission_bit is not None and f.permission_bit < 1:
            problems.append(f"{where}: permission_bit must be a positive integer")
        if f.name in seen:
            problems.append(f"{where}: Spotler field {f.name!r} is mapped twice")
        seen.add(f.name)
        target = f.target
        if target is None:
            continue
        if target.connector not in UPDATE_CONNECTORS or not target.field:
            problems.append(
                f"{where}: writeback {f.writeback!r} must be <UpdateConnector>.<field> with one of "
                + ", ".join(UPDATE_CONNECTORS)
            )
        elif f.type == "tablelink":
            problems.append(f"{where}: table-link fields are never written back to AFAS")
        elif str(target) in FORBIDDEN_WRITEBACK:
            problems.append(
                f"{where}: {FORBIDDEN_WRITEBACK[str(target)]} ({target}) is never written back to AFAS"
            )
    if mapping.field_for_property("email") is None:
        problems.append("no field maps to the Spotler property 'email'")
    for rule_target in [mapping.bounce.writeback] if mapping.bounce.writeback else []:
        connector, _, field = rule_target.partition(".")
        if connector != "KnContact" or not field:
            problems.append(f"bounce.writeback {rule_target!r} must be KnContact.<yes/no field>")
    if problems:
        raise ConfigError("invalid mapping: " + "; ".join(problems))
    return mapping


def decode_mapping(text: str | bytes, *, source: str = "mapping") -> Mapping:
    """Decode and check a mapping; every problem is named in one ConfigError."""
    try:
        mapping = msgspec.toml.decode(text, type=Mapping)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid mapping in {source}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    try:
        return _check(mapping)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def default_mapping_path() -> Path:
    """The example mapping for the sandboxes' GetConnector, shipped in the package."""
    return Path(__file__).resolve().parent.parent / "data" / "mapping.example.toml"


def load_mapping(path: Path | None) -> Mapping:
    path = path or default_mapping_path()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {path}: {exc.strerror}") from None
    return decode_mapping(text, source=str(path))
