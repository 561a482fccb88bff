"""Discovery: which objects become streams, and what each stream's schema and metadata say.

Cheap on large orgs: describeGlobal is read once, object names are matched against the
``streams`` patterns *before* anything is described, objects Bulk cannot query are dropped by
name (no describe needed), and the remaining describes are fetched 25 per ``composite/batch``
call by :class:`sfbulk.describe.Describer`.

Each stream's JSON schema comes from :mod:`sfbulk.schema` (every field nullable except ``Id``).
Fields a Bulk query cannot read (compound address and geolocation parents, base64) stay in the
schema so the catalog shows them, but their metadata says ``inclusion: unsupported`` with the
reason, so they are never selected or queried. ``related_fields`` add parent columns such as
``Account.External_Id__c``, typed from the parent's describe.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfbulk.describe import find_field, pk_chunk_parent, readable_fields, replication_key
from sfbulk.schema import field_json_schema

logger = logging.getLogger(__name__)

#: Schemas shown for fields a Bulk query cannot read (they are never selected).
_UNSUPPORTED_SCHEMAS: dict[str, dict[str, Any]] = {
    "address": {"type": ["object", "null"]},
    "location": {"type": ["object", "null"]},
    "base64": {"type": ["string", "null"]},
}
#: Deepest parent path SOQL allows in a select list (``A.B.C.D.E.Field``).
MAX_RELATIONSHIP_DEPTH = 5


def match_objects(names: Iterable[str], patterns: Sequence[str] | None) -> list[str]:
    """The names matching any of ``patterns`` (shell-style, case-insensitive), in input order.

    ``None`` or an empty list matches every name.
    """
    ordered = list(names)
    if not patterns:
        return ordered
    folded = [pattern.lower() for pattern in patterns]
    return [name for name in ordered
            if any(fnmatch.fnmatchcase(name.lower(), pattern) for pattern in folded)]


def literal_patterns(patterns: Sequence[str] | None) -> list[str]:
    """The patterns that name one object exactly (no wildcard): a user asked for those by name."""
    return [p for p in patterns or () if not any(ch in p for ch in "*?[")]


@dataclass(frozen=True)
class RelatedColumn:
    """A parent field read through a relationship path.

    Attributes:
        name: The column as SOQL selects it and Bulk heads it (``Account.External_Id__c``).
        field: The parent field's describe.
        parent: The object the field belongs to.
    """

    name: str
    field: Mapping[str, Any]
    parent: str


def resolve_related_path(
    describe: Mapping[str, Any],
    path: str,
    describe_of: Callable[[str], Mapping[str, Any] | None],
) -> RelatedColumn:
    """Resolve ``Rel.Field`` (up to five relationships deep) against the describes.

    Relationship and field names are matched without regard to case and returned in their
    canonical spelling. For a polymorphic relationship the first possible parent that has the
    next name is used.

    Raises:
        ValueError: A part of the path does not exist, or the path is not a parent path.
    """
    obj_name = describe.get("name", "?")
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"{obj_name}: related field {path!r} is not a path like Account.Name")
    if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
        raise ValueError(f"{obj_name}: related field {path!r} goes deeper than "
                         f"{MAX_RELATIONSHIP_DEPTH} relationships")
    current: Mapping[str, Any] = describe
    canonical: list[str] = []
    for relationship in parts[:-1]:
        reference = _reference(current, relationship)
        if reference is None:
            raise ValueError(f"{obj_name}: related field {path!r}: {current.get('name', '?')} "
                             f"has no relationship {relationship!r}")
        canonical.append(reference["relationshipName"])
        parent = None
        rest = parts[len(canonical)]
        for target in reference.get("referenceTo") or []:
            candidate = describe_of(target)
            if candidate is None:
                continue
            if len(canonical) == len(parts) - 1:
                if find_field(candidate, rest) is not None:
                    parent = candidate
                    break
            elif _reference(candidate, rest) is not None:
                parent = candidate
                break
        if parent is None:
            raise ValueError(f"{obj_name}: related field {path!r}: no parent of "
                             f"{'.'.join(canonical)} has {rest!r}")
        current = parent
    target_field = find_field(current, parts[-1])
    assert target_field is not None  # checked while walking
    reason = _unreadable_reason(target_field)
    if reason:
        raise ValueError(f"{obj_name}: related field {path!r} cannot be read: {reason}")
    canonical.append(target_field["name"])
    return RelatedColumn(".".join(canonical), target_field, str(current.get("name", "?")))


def _reference(describe: Mapping[str, Any], relationship: str) -> dict[str, Any] | None:
    folded = relationship.lower()
    for item in describe.get("fields", ()):
        if item.get("type") == "reference" and (item.get("relationshipName") or "").lower() \
                == folded:
            return item
    return None


def _unreadable_reason(item: Mapping[str, Any]) -> str | None:
    if item.get("type") in _UNSUPPORTED_SCHEMAS:
        return f"{item.get('type')} fields cannot be read by a Bulk query"
    return None


@dataclass
class StreamSpec:
    """Everything a stream needs to know about its object, from describe and settings.

    Attributes:
        name: The object's API name (also the stream name).
        schema: JSON schema: readable fields, unsupported fields (for the catalog) and related
            columns.
        unsupported: Field name → why a Bulk query cannot read it.
        replication_key: SystemModstamp, LastModifiedDate or CreatedDate; None = full table.
        related: Related columns in the order configured.
        pk_parent: The object whose Ids chunk this one (None when PK chunking is impossible).
        field_types: Column → describe type (readable fields and related columns).
    """

    name: str
    schema: dict[str, Any]
    unsupported: dict[str, str] = field(default_factory=dict)
    replication_key: str | None = None
    related: list[RelatedColumn] = field(default_factory=list)
    pk_parent: str | None = None
    field_types: dict[str, str] = field(default_factory=dict)


def build_spec(
    describe: Mapping[str, Any],
    *,
    related_paths: Sequence[str] = (),
    describe_of: Callable[[str], Mapping[str, Any] | None] | None = None,
) -> StreamSpec:
    """The :class:`StreamSpec` of one object.

    Args:
        describe: The object's describe.
        related_paths: Parent paths to add as columns (``Account.External_Id__c``).
        describe_of: Looks up parent describes (needed with ``related_paths``).

    Raises:
        ValueError: A related path cannot be resolved (names the object and the path).
    """
    name = str(describe["name"])
    split = readable_fields(describe)
    readable = {item["name"] for item in split.fields}
    properties: dict[str, Any] = {}
    field_types: dict[str, str] = {}
    for item in describe.get("fields", ()):
        fname = item["name"]
        if fname in readable:
            schema = field_json_schema(item)
            if schema is None:  # pragma: no cover - readable_fields already excludes these
                continue
            properties[fname] = schema
            field_types[fname] = item.get("type", "string")
        else:
            properties[fname] = dict(_UNSUPPORTED_SCHEMAS.get(item.get("type", ""),
                                                              {"type": ["object", "null"]}))
    related: list[RelatedColumn] = []
    for path in related_paths:
        if describe_of is None:
            raise ValueError(f"{name}: related fields need parent describes")
        column = resolve_related_path(describe, path, describe_of)
        if column.name in properties or any(r.name == column.name for r in related):
            raise ValueError(f"{name}: related field {path!r} is listed twice")
        schema = field_json_schema(column.field) or {"type": ["string", "null"]}
        # A parent may be missing or unreadable, so a related column is always nullable.
        declared = schema.get("type")
        if isinstance(declared, str):
            schema["type"] = [declared, "null"]
        properties[column.name] = schema
        field_types[column.name] = column.field.get("type", "string")
        related.append(column)
    return StreamSpec(
        name=name,
        schema={"type": "object", "properties": properties},
        unsupported=dict(split.excluded),
        replication_key=replication_key(describe),
        related=related,
        pk_parent=pk_chunk_parent(name),
        field_types=field_types,
    )
