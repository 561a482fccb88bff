"""JSON schema for Salesforce fields, from their describe type.

The mapping (describe ``type`` → JSON schema; every field but ``Id`` also allows ``null``, because
the ``nillable`` flag says nothing about what a query returns: formula fields, fields hidden by
field-level security and relationship columns all come back empty):

========================================================  =========================================
id, reference, string, picklist, multipicklist,           ``string`` (``maxLength`` = the field's
textarea, email, phone, url, combobox                     ``length`` unless calculated)
encryptedstring, anyType, json                            ``string`` (no length: masked or untyped)
boolean                                                   ``boolean``
int, long                                                 ``integer``
double, currency, percent                                 ``number``
date / datetime / time                                    ``string`` with ``format`` ``date`` /
                                                          ``date-time`` / ``time``
address, location (compound), base64                      not part of the schema: Bulk queries
                                                          reject them (their components are kept)
anything else (a type newer than this code)               ``string``, with a warning logged once
========================================================  =========================================

Numbers are exact: the tap emits :class:`decimal.Decimal` values, which the Singer SDK serialises
digit for digit (simplejson with ``use_decimal``), so ``123456789012345.67`` is never rounded
through a float. Integers are emitted as Python ``int``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "EXCLUDED_TYPES",
    "STRING_TYPES",
    "compound_parents",
    "field_exclusion_reason",
    "field_json_schema",
    "object_json_schema",
    "value_kind",
]

logger = logging.getLogger(__name__)

#: Describe types carried as plain strings.
STRING_TYPES = frozenset({
    "id", "reference", "string", "picklist", "multipicklist", "textarea", "email", "phone", "url",
    "combobox", "encryptedstring", "anyType", "json",
})
#: String types whose ``length`` is a trustworthy ``maxLength``.
_LENGTH_TYPES = frozenset({
    "id", "reference", "string", "picklist", "multipicklist", "textarea", "email", "phone", "url",
    "combobox",
})
_KINDS = {
    "boolean": "boolean",
    "int": "integer",
    "long": "integer",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
}
_FORMATS = {"date": "date", "datetime": "date-time", "time": "time"}
#: Types a Bulk query cannot select, with the reason.
EXCLUDED_TYPES = {
    "address": "compound address field: Bulk queries reject it; its component fields are kept",
    "location": "compound geolocation field: Bulk queries reject it; Latitude/Longitude are kept",
    "base64": "base64 (binary) field: Bulk queries cannot return it",
}
_warned: set[str] = set()


def value_kind(field_type: str) -> str:
    """How values of a describe type are represented.

    Returns:
        One of ``string``, ``boolean``, ``integer``, ``number``, ``date``, ``datetime``, ``time``.
        Unknown and compound types are ``string``.
    """
    return _KINDS.get(field_type, "string")


def _warn_unknown(field_type: str, name: str) -> None:
    if field_type not in _warned:
        _warned.add(field_type)
        logger.warning("Field %s has the unknown Salesforce type %r; treating it as a string",
                       name, field_type)


def field_json_schema(field: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of one describe field, or ``None`` when a Bulk query cannot select it.

    Args:
        field: One entry of a describe's ``fields`` (needs ``name`` and ``type``; uses
            ``length`` and ``calculated``).
    """
    field_type = field.get("type", "")
    name = field.get("name", "?")
    if field_type in EXCLUDED_TYPES:
        return None
    kind = value_kind(field_type)
    if kind == "string" and field_type not in STRING_TYPES:
        _warn_unknown(field_type, name)
    json_type = "string" if kind in ("string", "date", "datetime", "time") else kind
    schema: dict[str, Any] = {"type": json_type if name == "Id" else [json_type, "null"]}
    if field_type in _FORMATS:
        schema["format"] = _FORMATS[field_type]
    length = field.get("length") or 0
    if field_type in _LENGTH_TYPES and length > 0 and not field.get("calculated"):
        schema["maxLength"] = length
    return schema


def compound_parents(describe: Mapping[str, Any]) -> dict[str, list[str]]:
    """Compound field name → the names of its component fields.

    A field naming itself as its ``compoundFieldName`` (Account ``Name`` in some orgs) is not a
    component of itself.
    """
    parents: dict[str, list[str]] = {}
    for field in describe.get("fields", ()):
        parent = field.get("compoundFieldName")
        if parent and parent != field.get("name"):
            parents.setdefault(parent, []).append(field["name"])
    return parents


def field_exclusion_reason(field: Mapping[str, Any],
                           parents: Mapping[str, list[str]] | None = None) -> str | None:
    """Why a Bulk query cannot select this field, or ``None`` when it can.

    Compound address and geolocation fields and base64 fields are refused by Bulk queries
    ("Selecting compound data not supported in Bulk Query"). Other compound parents are scalar
    fields Bulk reads fine (a Contact's ``Name`` over FirstName/LastName, an Opportunity's
    ``Fiscal`` over FiscalYear/FiscalQuarter), so they are kept along with their components; a
    compound parent of any other non-scalar type is excluded.

    Args:
        field: A describe field.
        parents: :func:`compound_parents` of the describe, to recognise compound parents.
    """
    field_type = field.get("type", "")
    if field_type in EXCLUDED_TYPES:
        return EXCLUDED_TYPES[field_type]
    name = str(field.get("name", ""))
    if parents and name in parents and field_type not in STRING_TYPES | _KINDS.keys():
        return (f"compound field of type {field_type!r} over {', '.join(parents[name])}: Bulk "
                "queries reject it; its component fields are kept")
    return None


def object_json_schema(describe: Mapping[str, Any],
                       selected: Iterable[str] | None = None) -> dict[str, Any]:
    """The JSON schema of an sObject's records as a Bulk query returns them.

    Args:
        describe: The sObject's describe result.
        selected: Field names to keep (any case); all readable fields when ``None``. A selected
            field that is not readable or does not exist raises :class:`ValueError`.

    Returns:
        ``{"type": "object", "properties": {...}}`` in describe order, without the fields a Bulk
        query cannot select.
    """
    parents = compound_parents(describe)
    fields = describe.get("fields", ())
    wanted: dict[str, str] | None = None
    if selected is not None:
        wanted = {name.lower(): name for name in selected}
        known = {field["name"].lower() for field in fields}
        missing = sorted(name for folded, name in wanted.items() if folded not in known)
        if missing:
            raise ValueError(f"{describe.get('name', '?')} has no field {', '.join(missing)}")
    properties: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if wanted is not None and name.lower() not in wanted:
            continue
        reason = field_exclusion_reason(field, parents)
        schema = None if reason else field_json_schema(field)
        if schema is None:
            if wanted is not None:
                raise ValueError(f"{describe.get('name', '?')}.{name} cannot be selected: "
                                 f"{reason or EXCLUDED_TYPES.get(field.get('type', ''))}")
            continue
        properties[name] = schema
    return {"type": "object", "properties": properties}
