"""AFAS Profit wire shapes: GetConnector pages, metainfo, update results, errors.

Every response shape ignores unknown fields and defaults the ones it can do
without, so a newer Profit version adding a field never breaks a decode.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "AfasErrorBody",
    "AfasMaintenance",
    "ConnectorRef",
    "EnvironmentInfo",
    "FieldValue",
    "GetConnectorField",
    "GetConnectorMeta",
    "GetConnectorPage",
    "MetaInfo",
    "UpdateConnectorMeta",
    "UpdateField",
    "UpdateObjectMeta",
    "UpdateResult",
]


class GetConnectorPage(msgspec.Struct):
    """``{skip, take, rows}``: one page of a GetConnector (``take`` is not reliable)."""

    rows: list[dict[str, Any]] = []
    skip: int | None = None
    take: int | None = None


class ConnectorRef(msgspec.Struct, frozen=True):
    """A connector the token may use."""

    id: str
    description: str = ""


class EnvironmentInfo(msgspec.Struct, frozen=True):
    """Which environment and App Connector the token belongs to."""

    envid: str = ""
    appName: str = ""
    group: str = ""
    tokenExpiry: str = ""


class MetaInfo(msgspec.Struct, frozen=True):
    """``GET metainfo``: the Get- and UpdateConnectors the token may use."""

    updateConnectors: list[ConnectorRef] = []
    getConnectors: list[ConnectorRef] = []
    info: EnvironmentInfo | None = None

    @property
    def update_connector_ids(self) -> set[str]:
        return {c.id for c in self.updateConnectors}

    @property
    def get_connector_ids(self) -> set[str]:
        return {c.id for c in self.getConnectors}


class GetConnectorField(msgspec.Struct, frozen=True):
    """One column of a GetConnector; ``id`` is the name used in rows, filters and sorting."""

    id: str
    fieldId: str = ""
    dataType: str = "string"
    label: str = ""
    length: int = 0
    controlType: int = 0
    decimals: int = 0
    decimalsFieldId: str = ""


class GetConnectorMeta(msgspec.Struct, frozen=True):
    """``GET metainfo/get/{id}``: the columns of a GetConnector."""

    name: str = ""
    description: str = ""
    fields: list[GetConnectorField] = []

    @property
    def columns(self) -> list[str]:
        return [f.id for f in self.fields]

    def field(self, column: str) -> GetConnectorField | None:
        return next((f for f in self.fields if f.id == column), None)


class FieldValue(msgspec.Struct, frozen=True):
    """One allowed value of a code-table field."""

    id: str
    description: str = ""


class UpdateField(msgspec.Struct, frozen=True):
    """One field of an UpdateConnector object (note ``decimalFieldId``, not ``decimals…``)."""

    fieldId: str
    primaryKey: bool = False
    dataType: str = "string"
    label: str = ""
    mandatory: bool = False
    length: int = 0
    decimals: int = 0
    decimalFieldId: str = ""
    notzero: bool = False
    controlType: int = 0
    values: list[FieldValue] | None = None


class UpdateObjectMeta(msgspec.Struct, frozen=True):
    """A nested object of an UpdateConnector (``KnBasicAddressAdr``, ``KnContact``…)."""

    name: str
    fields: list[UpdateField] = []
    objects: list[UpdateObjectMeta] = []


class UpdateConnectorMeta(msgspec.Struct, frozen=True):
    """``GET metainfo/update/{id}``: the writable fields and nested objects."""

    name: str = ""
    description: str = ""
    fields: list[UpdateField] = []
    objects: list[UpdateObjectMeta] = []

    @property
    def field_ids(self) -> set[str]:
        return {f.fieldId for f in self.fields}

    def field(self, field_id: str) -> UpdateField | None:
        return next((f for f in self.fields if f.fieldId == field_id), None)


class UpdateResult(msgspec.Struct, frozen=True):
    """``{"results": {Connector: {keys}}}``; empty when AFAS answered without a body."""

    results: dict[str, dict[str, Any]] = {}

    def keys_of(self, connector: str) -> dict[str, Any]:
        return self.results.get(connector, {})


class AfasMaintenance(msgspec.Struct, frozen=True):
    """The ``error`` object of a 503 maintenance answer."""

    code: str | int | None = None
    message: str = ""


class AfasErrorBody(msgspec.Struct, frozen=True):
    """An AFAS error answer: a 500 ``{externalMessage, errorNumber, profitLogReference}``,
    a bare ``{message}``, or a 503 ``{error, retry_after}``."""

    externalMessage: str = ""
    errorNumber: int | str | None = None
    profitLogReference: str = ""
    message: str = ""
    error: AfasMaintenance | None = None
    # Raw, read by the Retry-After rules (``retry_after_text``): a float field would refuse the
    # whole body for an out-of-range 1e400, and the wait AFAS asked for would be lost.
    retry_after: msgspec.Raw = msgspec.Raw()

    @property
    def retry_after_text(self) -> str | None:
        """The body's ``retry_after`` as text (a JSON number or string), None when absent or null."""
        raw = bytes(self.retry_after).strip()
        if not raw or raw == b"null":
            return None
        return raw.decode("utf-8", "replace").strip('"')

    @property
    def text(self) -> str:
        """The most telling message the body carries."""
        return self.externalMessage or self.message or (self.error.message if self.error else "")
