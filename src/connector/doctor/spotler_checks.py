"""Spotler checks against ``contact/properties/list``: credentials, properties, permission bits."""

from __future__ import annotations

from connector.clients.spotler import SpotlerClient
from connector.doctor.calls import attempt
from connector.doctor.report import Check, fail, ok, warn
from connector.errors import AuthError, ConnectorError, RetriableError
from connector.schemas.mapping import Mapping
from connector.schemas.spotler import PERMISSIONS, Property

__all__ = [
    "CREDENTIALS",
    "PERMISSION_BITS",
    "PROPERTIES",
    "check_credentials",
    "check_permissions",
    "check_properties",
]

CREDENTIALS = "Spotler credentials"
PROPERTIES = "Spotler properties"
PERMISSION_BITS = "Spotler permissions"

# Property types that take any text as it is; the others validate the value (a postcode, a date…).
_TEXT_TYPES = frozenset({"string"})
_VALIDATED_TYPES = frozenset({"int", "money", "gender", "postcode", "mobNr", "date", "birthdate", "dateTime"})
_IN_SPOTLER = "in Spotler Mail+ (contact fields)"
_EMAIL = "email"


def check_credentials(client: SpotlerClient) -> tuple[Check, list[Property] | None]:
    """The key and secret are accepted: ``GET contact/properties/list`` answers."""
    try:
        properties = attempt(client.properties)
    except AuthError as exc:
        return fail(
            CREDENTIALS,
            f"key or secret refused (HTTP {exc.status or '?'})",
            "set SPOTLER_KEY and SPOTLER_SECRET to the REST API consumer key and secret of the Spotler "
            "Mail+ account (and check the account's licence includes the REST API)",
        ), None
    except RetriableError as exc:
        return fail(
            CREDENTIALS, f"Spotler did not answer: {exc}", "check SPOTLER_BASE_URL and the network, then run again"
        ), None
    except ConnectorError as exc:
        return fail(
            CREDENTIALS,
            f"GET contact/properties/list failed: {exc}",
            "check SPOTLER_BASE_URL (e.g. https://restapi.mailplus.nl/integrationservice-1.1.0)",
        ), None
    return ok(CREDENTIALS, f"accepted; {len(properties)} contact properties"), properties


def check_properties(properties: list[Property], mapping: Mapping) -> Check:
    """Every mapped property exists with a type that takes its values (e-mail: type email)."""
    catalogue = {p.name: p for p in properties}
    email = _EMAIL  # the mapping always maps a column to it
    problems: list[str] = []
    fixes: list[str] = []
    notes: list[str] = []
    mapped = [f for f in mapping.fields if f.spotler_property is not None]
    for f in mapped:
        name = f.spotler_property
        assert name is not None
        found = catalogue.get(name)
        if found is None:
            problems.append(f"property {name} (column {f.column}) does not exist")
            fixes.append(f"add contact field {name} {_IN_SPOTLER}, or change `property` for column {f.column!r}")
        elif name == email and found.type != "email":
            problems.append(f"{name} is of type {found.type}, not email")
            fixes.append(f"map the e-mail column to Spotler's e-mail property (type email), not {name}")
        elif found.type == "set":
            problems.append(f"{name} is a set (options with bits); column {f.column} holds one value")
            fixes.append(f"map column {f.column!r} with `permission_bit` to one bit, or to a text property")
        elif found.type in _VALIDATED_TYPES or (found.type == "email" and name != email):
            notes.append(f"{name} is of type {found.type}: Spotler refuses values that do not fit")
        elif found.type not in _TEXT_TYPES and name != email:
            notes.append(f"{name} has the unknown type {found.type}")
    if problems:
        return fail(PROPERTIES, "; ".join(problems + notes), "; ".join(fixes))
    if notes:
        return warn(PROPERTIES, "; ".join(notes), "check the column's values fit, or map it to a string property")
    return ok(PROPERTIES, f"{len(mapped)} mapped properties exist with compatible types")


def check_permissions(properties: list[Property], mapping: Mapping) -> Check:
    """Every mapped permission bit is an entry of the ``permissions`` set."""
    wanted = [f for f in mapping.fields if f.permission_bit is not None]
    if not wanted:
        return ok(PERMISSION_BITS, "no permission bit mapped")
    permissions = next((p for p in properties if p.name == PERMISSIONS), None)
    if permissions is None or permissions.type != "set":
        return fail(
            PERMISSION_BITS,
            f"the account has no '{PERMISSIONS}' set property",
            f"set up the newsletter permissions {_IN_SPOTLER}",
        )
    bits = {e.bit: e.description for e in permissions.entries or ()}
    missing = [f for f in wanted if f.permission_bit not in bits]
    if missing:
        return fail(
            PERMISSION_BITS,
            "; ".join(f"bit {f.permission_bit} (column {f.column}) is not a permission" for f in missing)
            + f" (the account has bits {', '.join(str(b) for b in sorted(bits)) or 'none'})",
            "; ".join(
                f"add permission bit {f.permission_bit} {_IN_SPOTLER}, or change `permission_bit` for column "
                f"{f.column!r}"
                for f in missing
            ),
        )
    wanted_bits = [f.permission_bit for f in wanted if f.permission_bit is not None]
    shown = ", ".join(f"{bit} ({bits[bit] or 'no description'})" for bit in wanted_bits)
    return ok(PERMISSION_BITS, f"bits present: {shown}")
