"""REST query and sObject Collections: the way to objects the Bulk API refuses.

An object whose "Allow Bulk API Access" is off (metadata ``enableBulkApi=false``) answers every
Bulk job with ``InvalidEntity`` (1.0) or ``INVALIDENTITY`` (2.0), and describe does not say so
beforehand. The REST API still reads and writes it. This module gives tap and target the same
shapes they get from Bulk, so the rest of their code does not change:

- :func:`iter_rest_query` follows ``nextRecordsUrl`` and yields each record as a dict of CSV
  cells, exactly as a Bulk CSV result row reads: parents flattened into dotted columns
  (``Account.External_Id__c``), booleans ``true``/``false``, numbers as text, date-times in
  Bulk's ``…T…:SS.sssZ`` form, null as an empty cell. :class:`~sfbulk.csvcodec.RecordTyper`
  therefore types both paths identically.
- :class:`RestCollections` writes through sObject Collections, 200 records per call, and returns
  one :class:`~sfbulk.bulk1.RowResult` per record in input order, the shape of Bulk 1.0 ingest
  results.

REST costs one API call per page of 2,000 rows (query) or per 200 records (writes), where Bulk
needs a handful of calls per job: it is a fallback, not a replacement.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sfbulk.bulk1 import RowResult
from sfbulk.csvcodec import make_encoder
from sfbulk.errors import RecordCountMismatchError, SalesforceError

if TYPE_CHECKING:
    from sfbulk.http import SalesforceClient

__all__ = [
    "COLLECTION_SIZE",
    "RestCollections",
    "is_bulk_refusal",
    "iter_rest_query",
    "json_value",
    "rest_cell",
]

logger = logging.getLogger(__name__)

#: Records per sObject Collections call (Salesforce's maximum).
COLLECTION_SIZE = 200
#: Error codes Salesforce gives a Bulk job on an object the Bulk API cannot reach.
BULK_REFUSAL_CODES = frozenset({"INVALIDENTITY", "InvalidEntity"})

_REST_DATETIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\+0000$")
_NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})


def is_bulk_refusal(error: BaseException) -> bool:
    """Whether ``error`` is Salesforce refusing a Bulk job because of the object itself.

    Only the refusal at job creation counts (``INVALIDENTITY`` / ``InvalidEntity``); an unknown
    object is refused with the same 2.0 code and is told apart by its message.
    """
    if not isinstance(error, SalesforceError):
        return False
    if getattr(error, "code", None) not in BULK_REFUSAL_CODES:
        return False
    return "not supported by the Bulk API" in str(error)


# --------------------------------------------------------------------------------------------
# Reading


def rest_cell(value: Any, field_type: str | None = None) -> str:
    """A REST JSON value as the cell a Bulk CSV result holds for it.

    Date-times come from REST as ``…+0000`` and from Bulk as ``…Z``; with ``field_type`` only
    ``datetime`` fields are rewritten, without it any value of that exact form is.
    """
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if field_type in (None, "datetime"):
            match = _REST_DATETIME.match(value)
            if match is not None:
                return match.group(1) + "Z"
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def _flatten(record: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in record.items():
        if key == "attributes":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "attributes" in value:
            _flatten(value, name + ".", out)
        else:
            out[name] = value


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A REST record with its parents flattened into dotted columns (values left as JSON)."""
    out: dict[str, Any] = {}
    _flatten(record, "", out)
    return out


def iter_rest_query(
    client: SalesforceClient,
    soql: str,
    include_deleted: bool = False,
    *,
    columns: Sequence[str] | None = None,
    field_types: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """Run ``soql`` through REST ``query`` (``queryAll`` with ``include_deleted``) page by page.

    Args:
        client: The session to use.
        soql: The query (any SOQL REST accepts).
        include_deleted: Read soft-deleted rows too (``queryAll``).
        columns: When given, every row has exactly these keys in this order (a null parent,
            which REST gives as ``"Account": null``, leaves its columns empty), matched
            case-insensitively as Bulk headers are.
        field_types: Describe type per column, so only date-time fields are rewritten.

    Yields:
        One dict of CSV cells per record.

    Raises:
        SalesforceError: Salesforce refused a page.
        RecordCountMismatchError: the pages held another number of records than ``totalSize``.
    """
    types = {k.lower(): v for k, v in (field_types or {}).items()}
    wanted = list(columns) if columns is not None else None
    path = "/queryAll" if include_deleted else "/query"
    response = client.rest("GET", path, params={"q": soql})
    read = 0
    pages = 0
    while True:
        body = response.json(parse_float=Decimal)
        pages += 1
        for record in body.get("records") or ():
            flat = flatten_record(record)
            read += 1
            if wanted is None:
                yield {k: rest_cell(v, types.get(k.lower())) for k, v in flat.items()}
                continue
            lowered = {k.lower(): v for k, v in flat.items()}
            yield {name: rest_cell(lowered.get(name.lower()), types.get(name.lower()))
                   for name in wanted}
        next_url = body.get("nextRecordsUrl")
        if body.get("done", True) or not next_url:
            break
        response = client.rest("GET", str(next_url))
    total = body.get("totalSize")
    if isinstance(total, int) and total != read:
        raise RecordCountMismatchError(
            f"REST query returned {read} records in {pages} page(s) but totalSize was {total}",
            expected=total, actual=read, method="GET", path=path)
    logger.debug("REST query read %d records in %d page(s)", read, pages)


# --------------------------------------------------------------------------------------------
# Writing


def json_value(field_type: str | None, value: Any, tz: dt.tzinfo | None = None, *,
               field: str = "") -> Any:
    """A record value as REST JSON wants it for a field of ``field_type``.

    ``None`` and ``""`` become JSON null (set the field to null, as ``#N/A`` does in a Bulk
    CSV); booleans and numbers stay JSON booleans and numbers (``Decimal`` digit for digit);
    dates, date-times and times take the text Bulk would send.

    Raises:
        ValueError: a value the field's type cannot take (naming ``field``).
    """
    if value is None or value == "":
        return None
    kind = field_type or "string"
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"{field or 'value'}: {value!r} is not a boolean")
    if kind in _NUMBER_TYPES and isinstance(value, (int, float, Decimal)) \
            and not isinstance(value, bool):
        return value if not isinstance(value, float) else Decimal(repr(value))
    text = make_encoder(kind, tz=tz, field=field)(value)
    if kind in _NUMBER_TYPES:
        return Decimal(text)
    return text


def _relationship_key(column: str) -> tuple[str | None, str, str] | None:
    """``(type, relationship, field)`` of ``Rel.Field`` / ``Type:Rel.Field``; None otherwise."""
    if "." not in column:
        return None
    head, _, field = column.rpartition(".")
    type_name, _, rel = head.rpartition(":")
    return (type_name or None), rel, field


def reference_field_name(relationship: str) -> str:
    """The reference field behind a relationship name (``Account`` → ``AccountId``,
    ``Parent__r`` → ``Parent__c``), by Salesforce's naming rule."""
    if relationship.endswith("__r"):
        return relationship[:-3] + "__c"
    return relationship + "Id"


def _dumps(value: Any) -> bytes:
    """JSON with Decimals written digit for digit (``json`` would refuse or round them)."""
    return _json_text(value).encode("utf-8")


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json_text(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} cannot be sent to Salesforce")
    text = str(value)
    return format(value, "f") if "E" in text or "e" in text else text


def _render_error(errors: Iterable[Mapping[str, Any]]) -> str:
    """Collections errors in Bulk 1.0's result form ``CODE:message:fields --``."""
    parts = []
    for error in errors:
        fields = ",".join(str(f) for f in error.get("fields") or ())
        parts.append(f"{error.get('statusCode') or 'UNKNOWN_EXCEPTION'}:"
                     f"{error.get('message') or ''}:{fields} --")
    return "\n".join(parts) or "UNKNOWN_EXCEPTION:Salesforce reported no error text: --"


class RestCollections:
    """Insert, update, upsert and delete through sObject Collections, 200 records a call.

    Args:
        client: The session to use.
        all_or_none: Ask Salesforce to roll a call back when one of its records fails (off by
            default, so each record succeeds or fails alone, as in a Bulk job).
    """

    OPERATIONS = ("insert", "update", "upsert", "delete")

    def __init__(self, client: SalesforceClient, *, all_or_none: bool = False) -> None:
        self.client = client
        self.all_or_none = all_or_none
        self.calls = 0

    def body_record(self, object_name: str, record: Mapping[str, Any],
                    field_types: Mapping[str, str] | None = None,
                    tz: dt.tzinfo | None = None) -> dict[str, Any]:
        """One record as a collections JSON object.

        Relationship columns become nested parents (``{"Account": {"External_Id__c": "x"}}``;
        polymorphic ones carry the parent's type); a null relationship value clears the
        reference field itself. A key absent from ``record`` is left unchanged by Salesforce.

        Raises:
            ValueError: a value its field's type cannot take.
        """
        types = field_types or {}
        out: dict[str, Any] = {"attributes": {"type": object_name}}
        for column, value in record.items():
            relationship = _relationship_key(column)
            if relationship is None:
                out[column] = json_value(types.get(column), value, tz, field=column)
                continue
            type_name, rel, field = relationship
            if value is None or value == "":
                out[reference_field_name(rel)] = None
                continue
            parent: dict[str, Any] = {}
            if type_name:
                parent["attributes"] = {"type": type_name}
            parent[field] = json_value(types.get(column), value, tz, field=column)
            out[rel] = parent
        return out

    def write(
        self,
        object_name: str,
        operation: str,
        records: Sequence[Mapping[str, Any]],
        external_id_field: str | None = None,
        *,
        field_types: Mapping[str, str] | None = None,
        tz: dt.tzinfo | None = None,
    ) -> list[RowResult]:
        """Save ``records`` and return one result per record, in input order.

        Args:
            object_name: The sObject.
            operation: ``insert``, ``update`` (records carry ``Id``), ``upsert`` (on
                ``external_id_field``) or ``delete`` (records carry ``Id``). REST has no hard
                delete.
            records: Column → value (field names and relationship columns, as for Bulk).
            external_id_field: The upsert key.
            field_types: Describe type per column, to send booleans, numbers and dates right.
            tz: Time zone for naive date-times.

        Raises:
            ValueError: an unsupported operation, or a value its field cannot take.
            SalesforceError: Salesforce refused a whole call. Earlier calls' records stay
                saved, so the caller must treat every record of this write as unknown.
        """
        if operation not in self.OPERATIONS:
            raise ValueError(f"{object_name}: the REST API cannot {operation} records "
                             f"(sObject Collections take {', '.join(self.OPERATIONS)})")
        if operation == "upsert" and not external_id_field:
            raise ValueError(f"{object_name}: upsert needs an external id field")
        results: list[RowResult] = []
        for start in range(0, len(records), COLLECTION_SIZE):
            chunk = records[start:start + COLLECTION_SIZE]
            answer = self._call(object_name, operation, chunk, external_id_field,
                                field_types, tz)
            if not isinstance(answer, list) or len(answer) != len(chunk):
                raise SalesforceError(
                    f"{object_name}: sObject Collections answered "
                    f"{len(answer) if isinstance(answer, list) else 'no list of'} results for "
                    f"{len(chunk)} records", code="RESULT_MISMATCH")
            for item in answer:
                success = bool(item.get("success"))
                created = bool(item.get("created", operation == "insert" and success))
                results.append(RowResult(item.get("id") or None, success,
                                         created if success else False,
                                         None if success else _render_error(
                                             item.get("errors") or ())))
        return results

    def _call(self, object_name: str, operation: str, chunk: Sequence[Mapping[str, Any]],
              external_id_field: str | None, field_types: Mapping[str, str] | None,
              tz: dt.tzinfo | None) -> Any:
        self.calls += 1
        flag = "true" if self.all_or_none else "false"
        if operation == "delete":
            ids = ",".join(str(r.get("Id") or "") for r in chunk)
            return self.client.rest("DELETE", "/composite/sobjects",
                                    params={"ids": ids, "allOrNone": flag}).json()
        body = {
            "allOrNone": self.all_or_none,
            "records": [self.body_record(object_name, r, field_types, tz) for r in chunk],
        }
        headers = {"Content-Type": "application/json"}
        if operation == "insert":
            response = self.client.rest("POST", "/composite/sobjects", data=_dumps(body),
                                        headers=headers)
        elif operation == "update":
            response = self.client.rest("PATCH", "/composite/sobjects", data=_dumps(body),
                                        headers=headers)
        else:
            response = self.client.rest(
                "PATCH", f"/composite/sobjects/{object_name}/{external_id_field}",
                data=_dumps(body), headers=headers)
        return response.json()
