"""The metainfo answers: what a token may use, and a GetConnector's or UpdateConnector's fields."""

from __future__ import annotations

import msgspec

from connector.sandbox.afas.catalogue import Catalogue, CodeValue
from connector.sandbox.afas.definitions import ResolvedColumn

__all__ = [
    "ConnectorInfo",
    "EnvInfo",
    "GetField",
    "GetMeta",
    "MetaInfo",
    "UpdateField",
    "UpdateMeta",
    "UpdateObject",
    "get_meta",
    "update_meta",
]

UPDATE_DESCRIPTIONS = {
    "KnOrganisation": "Organisatie",
    "KnPerson": "Persoon",
    "KnContact": "Contact",
}


class ConnectorInfo(msgspec.Struct):
    id: str
    description: str


class EnvInfo(msgspec.Struct):
    envid: str
    appName: str
    group: str
    tokenExpiry: str


class MetaInfo(msgspec.Struct):
    """``GET /metainfo``."""

    updateConnectors: list[ConnectorInfo]
    getConnectors: list[ConnectorInfo]
    info: EnvInfo


class GetField(msgspec.Struct):
    id: str
    fieldId: str
    dataType: str
    label: str
    length: int
    controlType: int
    decimals: int
    decimalsFieldId: str


class GetMeta(msgspec.Struct):
    """``GET /metainfo/get/{id}``."""

    name: str
    description: str
    fields: list[GetField]


class UpdateField(msgspec.Struct):
    fieldId: str
    primaryKey: bool
    dataType: str
    label: str
    mandatory: bool
    length: int
    decimals: int
    decimalFieldId: str
    notzero: bool
    controlType: int
    values: list[CodeValue] | None


class UpdateObject(msgspec.Struct):
    name: str
    fields: list[UpdateField]
    objects: list[UpdateObject]


class UpdateMeta(msgspec.Struct):
    """``GET /metainfo/update/{id}``."""

    name: str
    description: str
    fields: list[UpdateField]
    objects: list[UpdateObject]


_CONTROL_TYPES = {"string": 1, "boolean": 3, "date": 4, "int": 5, "decimal": 6}


def get_meta(name: str, description: str, columns: list[ResolvedColumn]) -> GetMeta:
    fields = [
        GetField(
            id=c.id,
            fieldId=f"U{i + 1:03d}",
            dataType=c.dataType,
            label=c.label,
            length=c.length,
            controlType=_CONTROL_TYPES[c.dataType],
            decimals=2 if c.dataType == "decimal" else 0,
            decimalsFieldId="",
        )
        for i, c in enumerate(columns)
    ]
    return GetMeta(name=name, description=description, fields=fields)


def _fields(catalogue: Catalogue, obj: str) -> list[UpdateField]:
    return [
        UpdateField(
            fieldId=f.fieldId,
            primaryKey=f.primaryKey,
            dataType=f.dataType,
            label=f.label,
            mandatory=f.mandatory,
            length=f.length,
            decimals=2 if f.dataType == "decimal" else 0,
            decimalFieldId="",
            notzero=False,
            controlType=f.control_type,
            values=f.values,
        )
        for f in catalogue.objects[obj].fields
    ]


def _objects(catalogue: Catalogue, obj: str, path: tuple[str, ...]) -> list[UpdateObject]:
    out = []
    for child in catalogue.objects[obj].objects:
        if child in path:  # KnPerson holds KnContact holds KnPerson: one level of nesting is shown
            continue
        out.append(
            UpdateObject(
                name=child,
                fields=_fields(catalogue, child),
                objects=_objects(catalogue, child, (*path, child)),
            )
        )
    return out


def update_meta(catalogue: Catalogue, name: str) -> UpdateMeta:
    return UpdateMeta(
        name=name,
        description=UPDATE_DESCRIPTIONS.get(name, catalogue.objects[name].description),
        fields=_fields(catalogue, name),
        objects=_objects(catalogue, name, (name,)),
    )
