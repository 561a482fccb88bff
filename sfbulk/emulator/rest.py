"""The REST API of the emulated org, and the emulator's admin endpoints.

REST resources (``/services/data/vNN.N/…``, every version from 20.0 to 66.0 alike):

- ``GET /services/data`` — the versions list (no session needed);
- ``GET /services/data/vNN.N`` — the resources of a version;
- ``GET …/sobjects`` (describeGlobal), ``GET …/sobjects/X`` (basic info),
  ``GET …/sobjects/X/describe``;
- ``GET …/limits`` with honest ``Remaining`` values for the allocations the emulator counts;
- ``GET …/query?q=`` / ``…/queryAll?q=`` and their ``nextRecordsUrl`` pages;
- ``POST …/sobjects/X``, ``GET|PATCH|DELETE …/sobjects/X/{id}`` and
  ``PATCH …/sobjects/X/{field}/{value}`` (upsert by external id), as simple-salesforce uses them;
- ``POST …/composite/batch`` (up to 25 subrequests, ``haltOnError``);
- sObject Collections: ``POST|PATCH|DELETE …/composite/sobjects`` (create, update by Id,
  delete by ``ids``) and ``PATCH …/composite/sobjects/X/{ExternalIdField}`` (upsert), up to
  200 records a call, ``allOrNone``, one result per record in input order. They work on
  objects whose Bulk API access is off, as in a real org.

Errors use REST's array form ``[{"message": …, "errorCode": …}]``. Sessions, the version and
the daily allocation are checked by the accounting middleware before any handler here runs.

Admin endpoints (``/_emulator/…``) need no session but answer only loopback clients:

- ``GET /_emulator/faults`` — the current fault switches;
- ``POST /_emulator/faults`` — set switches (JSON, see :meth:`Faults.configure`);
- ``DELETE /_emulator/faults`` — clear every switch;
- ``POST /_emulator/expire-sessions`` — expire every session now;
- ``POST /_emulator/revoke-refresh-token`` — later refresh grants fail with ``invalid_grant``;
- ``GET /_emulator/stats`` — API usage, sessions, faults fired, jobs and record counts;
- ``POST /_emulator/reset`` — see :meth:`EmulatorState.reset`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sfbulk.ids import is_valid_id, to18

if TYPE_CHECKING:
    from sfbulk.emulator.app import EmulatorState
    from sfbulk.emulator.metadata import SObjectDef

logger = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "The requested resource does not exist"
#: Subrequests allowed in one ``composite/batch`` call.
COMPOSITE_BATCH_MAX = 25
#: REST query cursors kept at once (oldest dropped first) and their idle lifetime.
MAX_QUERY_LOCATORS = 200
QUERY_LOCATOR_IDLE_SECONDS = 15 * 60


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON in Salesforce's REST content type."""
    body = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status, headers, "application/json;charset=UTF-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def error_response(
    status: int, code: str, message: str, fields: Sequence[str] | None = None
) -> Response:
    """``[{"message", "errorCode"[, "fields"]}]`` with ``status``."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = list(fields)
    return json_response([entry], status)


def not_found() -> Response:
    """404 ``NOT_FOUND``, for unknown objects, records and resources."""
    return error_response(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def _version(request: Request) -> str:
    return request.path_params["version"]


# ---------------------------------------------------------------------------------------------
# Versions and resources


def release_label(major: int) -> str:
    """Release name of API version ``major``.0: three a year from Winter '11 (20.0)."""
    index = major - 20
    season = ("Winter", "Spring", "Summer")[index % 3]
    return f"{season} '{11 + index // 3:02d}"


def versions_body(state: EmulatorState) -> list[dict[str, str]]:
    """``GET /services/data``: every served version, oldest first."""
    return [
        {"label": release_label(int(float(v))), "url": f"/services/data/v{v}", "version": v}
        for v in state.settings.api_versions
    ]


async def versions(request: Request) -> Response:
    """``GET /services/data``: the versions list (no session needed)."""
    return json_response(versions_body(_state(request)))


async def resources(request: Request) -> Response:
    """``GET /services/data/vNN.N``: the resources this version serves."""
    base = f"/services/data/v{_version(request)}"
    return json_response(
        {
            "limits": f"{base}/limits",
            "sobjects": f"{base}/sobjects",
            "query": f"{base}/query",
            "queryAll": f"{base}/queryAll",
            "composite": f"{base}/composite",
            "jobs": f"{base}/jobs",
        }
    )


# ---------------------------------------------------------------------------------------------
# Describe


def _object(request: Request) -> SObjectDef | None:
    return _state(request).org.catalog.get(request.path_params["sobject"])


def describe_global(request: Request) -> Response:
    """``GET …/sobjects``: describeGlobal."""
    state = _state(request)
    version = _version(request)
    return json_response(
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [obj.global_entry(version) for obj in state.org.catalog],
        }
    )


def describe_object(request: Request) -> Response:
    """``GET …/sobjects/X/describe``; 404 ``NOT_FOUND`` for an unknown object."""
    obj = _object(request)
    if obj is None:
        return not_found()
    return json_response(obj.describe(_version(request), _state(request).base_url()))


# ---------------------------------------------------------------------------------------------
# Limits


def limits_body(state: EmulatorState) -> dict[str, dict[str, int]]:
    """``GET …/limits``: every key a real org reports, in its alphabetical order.

    The allocations the emulator counts (API requests, Bulk batches, Bulk 2.0 query jobs and
    result storage) report what is really left; the rest are reported untouched.
    """
    from sfbulk.emulator.app import (
        DAILY_API_REQUESTS,
        DAILY_BULK_API_BATCHES,
        STATIC_LIMITS,
    )

    usage = state.usage
    out: dict[str, dict[str, int]] = {
        name: {"Max": maximum, "Remaining": maximum} for name, maximum in STATIC_LIMITS.items()
    }
    for name in usage.names():
        out[name] = {"Max": usage.maximum(name), "Remaining": usage.remaining(name)}
    # Older orgs name the batch allocation DailyBulkApiRequests; some clients still read it.
    out["DailyBulkApiRequests"] = dict(out[DAILY_BULK_API_BATCHES])
    assert DAILY_API_REQUESTS in out
    return dict(sorted(out.items()))


def limits(request: Request) -> Response:
    """``GET …/limits``."""
    return json_response(limits_body(_state(request)))


# ---------------------------------------------------------------------------------------------
# Rendering stored values as REST JSON


def rest_value(field_type: str | None, value: Any) -> Any:
    """A stored cell as REST JSON shows it (booleans, numbers, ``…+0000`` datetimes)."""
    if value is None:
        return None
    if field_type == "boolean":
        if isinstance(value, str):
            return value.lower() in ("1", "true")
        return bool(value)
    if field_type in ("int", "long"):
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    if field_type in ("double", "currency", "percent"):
        if isinstance(value, (bytes, bytearray)):
            value = value.decode()
        try:
            return float(Decimal(str(value)))
        except ArithmeticError:
            return value
    if field_type == "datetime" and isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+0000"
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def _record_url(version: str, object_name: str, record_id: str | None) -> str:
    base = f"/services/data/v{version}/sobjects/{object_name}"
    return f"{base}/{record_id}" if record_id else base


def _object_of_id(state: EmulatorState, record_id: str | None, fallback: str) -> str:
    if record_id:
        obj = state.org.catalog.by_key_prefix(str(record_id)[:3])
        if obj is not None:
            return obj.name
    return fallback


@dataclass
class _Layout:
    """How the columns of a query map onto nested REST records."""

    object_name: str
    columns: list[str]
    types: list[str]
    hidden: int  # leading columns added only to learn ids (not shown)


def _render_row(
    state: EmulatorState, layout: _Layout, row: Sequence[Any], version: str
) -> dict[str, Any]:
    """One result row as a REST record, relationship columns nested under their parents."""
    values = {col.lower(): val for col, val in zip(layout.columns, row, strict=False)}
    record_id = values.get("id")
    record: dict[str, Any] = {
        "attributes": {
            "type": layout.object_name,
            "url": _record_url(version, layout.object_name, record_id),
        }
    }
    for index in range(layout.hidden, len(layout.columns)):
        column = layout.columns[index]
        value = rest_value(layout.types[index], row[index])
        parts = column.split(".")
        target = record
        prefix = ""
        for part in parts[:-1]:
            prefix = f"{prefix}.{part}" if prefix else part
            child = target.get(part, _MISSING)
            if child is _MISSING:
                parent_id = values.get(f"{prefix}.id".lower())
                if parent_id is None:
                    target[part] = None
                    child = None
                else:
                    parent_type = _object_of_id(state, parent_id, part)
                    child = {
                        "attributes": {
                            "type": parent_type,
                            "url": _record_url(version, parent_type, parent_id),
                        }
                    }
                    target[part] = child
            if child is None:
                break
            target = child
        else:
            target[parts[-1]] = value
    return record


_MISSING = object()


def _extra_columns(soql_text: str) -> list[str]:
    """Id columns a REST query needs for ``attributes.url`` but does not select."""
    from sfbulk.emulator.soql import parse

    select = parse(soql_text, bulk=False)
    chosen = {".".join(p.segments).lower() for p in select.fields}
    extra: list[str] = []
    if "id" not in chosen:
        extra.append("Id")
    for path in select.fields:
        for depth in range(1, len(path.segments)):
            column = ".".join((*path.segments[:depth], "Id"))
            if column.lower() not in chosen and column not in extra:
                extra.append(column)
                chosen.add(column.lower())
    return extra


def _with_columns(soql_text: str, extra: list[str]) -> str:
    stripped = soql_text.lstrip()
    lead = len(soql_text) - len(stripped)
    # The text was parsed already, so it starts with SELECT.
    return soql_text[:lead] + "SELECT " + ", ".join(extra) + ", " + stripped[6:].lstrip()


@dataclass
class _Selected:
    """The outcome of a REST query: columns, their describe types, the object and all rows."""

    columns: list[str]
    field_types: list[str]
    object: str
    rows: list[tuple[Any, ...]]

    def __iter__(self) -> Any:
        return iter(self.rows)


def select_rows(state: EmulatorState, soql_text: str, include_deleted: bool = False) -> _Selected:
    """Run SOQL the way REST does: without the Bulk-only refusals (base64 fields, objects
    Bulk cannot query), all rows read at once (REST serves them from a snapshot anyway).

    Raises:
        SoqlError: for anything Salesforce would reject.
    """
    from sfbulk.emulator import soql

    select = soql.parse(soql_text, bulk=False)
    compiled = soql.compile_select(select, state.org.catalog, include_deleted, bulk=False)
    sql, params, columns, field_types = compiled
    rows = state.org.execute_sql(sql, params)
    return _Selected(list(columns), list(field_types), compiled.object, rows)


def count_rows(state: EmulatorState, soql_text: str, include_deleted: bool = False) -> int | None:
    """The answer to ``SELECT COUNT() FROM …`` (WHERE and LIMIT applied), or None when
    ``soql_text`` is not such a query.

    Raises:
        SoqlError: for anything Salesforce would reject.
    """
    from sfbulk.emulator import soql

    select = soql.parse(soql_text, bulk=False)
    if not select.count_only:
        return None
    sql, params, _, _ = soql.compile_select(select, state.org.catalog, include_deleted,
                                            bulk=False)
    return int(state.org.execute_sql(f"SELECT COUNT(*) FROM ({sql})", params)[0][0])


def run_rest_query(
    state: EmulatorState, soql_text: str, include_deleted: bool, version: str
) -> tuple[str, list[dict[str, Any]]]:
    """Run a REST query and render every record; returns ``(object, records)``.

    A query that does not select the ids ``attributes.url`` needs is run with them added; the
    added columns are left out of the records. Errors are raised for the query as written, so
    their positions point into the client's own text.

    Raises:
        SoqlError: for anything Salesforce would reject.
    """
    extra = _extra_columns(soql_text)
    if extra:
        try:
            cursor = select_rows(state, _with_columns(soql_text, extra), include_deleted)
        except Exception:
            # Report the error of the query the client wrote, not of the widened one.
            select_rows(state, soql_text, include_deleted)
            raise
    else:
        cursor = select_rows(state, soql_text, include_deleted)
    layout = _Layout(cursor.object, list(cursor.columns), list(cursor.field_types), len(extra))
    records = [_render_row(state, layout, row, version) for row in cursor]
    return cursor.object, records


# ---------------------------------------------------------------------------------------------
# REST query


def _page_size(request: Request) -> int:
    """Records per page: ``Sforce-Query-Options: batchSize=N`` (200..2000), else the default."""
    size = _state(request).settings.query_page_size
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            size = min(max(int(value.strip()), 200), 2000)
    return size


def _query_page(
    state: EmulatorState,
    records: list[dict[str, Any]],
    start: int,
    size: int,
    version: str,
    kind: str,
    locator: str | None,
) -> dict[str, Any]:
    end = start + size
    body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records)}
    if end < len(records):
        if locator is None:
            locator = state.query_locators.open(records, version, kind)
        body["nextRecordsUrl"] = f"/services/data/v{version}/{kind}/{locator}-{end}"
    elif locator is not None:
        state.query_locators.close(locator)
    body["records"] = records[start:end]
    return body


def _soql_error(exc: Exception) -> Response:
    code = getattr(exc, "code", "MALFORMED_QUERY")
    message = getattr(exc, "message", str(exc))
    return error_response(400, code, message)


def rest_query(request: Request) -> Response:
    """``GET …/query?q=`` and ``…/queryAll?q=``: the first page, and a cursor for the rest."""
    from sfbulk.emulator.soql import SoqlError

    state = _state(request)
    version = _version(request)
    kind = "queryAll" if request.url.path.rstrip("/").endswith("queryAll") else "query"
    soql_text = request.query_params.get("q")
    if not soql_text:
        return error_response(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        total = count_rows(state, soql_text, kind == "queryAll")
        if total is not None:
            # COUNT() answers with the number alone: no records, no locator.
            return json_response({"totalSize": total, "done": True, "records": []})
        _, records = run_rest_query(state, soql_text, kind == "queryAll", version)
    except SoqlError as exc:
        return _soql_error(exc)
    return json_response(_query_page(state, records, 0, _page_size(request), version, kind, None))


def rest_query_more(request: Request) -> Response:
    """``GET …/query/{locator}-{offset}``: a later page of an open query."""
    state = _state(request)
    locator, _, offset = request.path_params["locator"].partition("-")
    cursor = state.query_locators.get(locator) if offset.isdigit() else None
    if cursor is None:
        return error_response(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return json_response(
        _query_page(
            state,
            cursor.rows,
            int(offset),
            _page_size(request),
            cursor.version,
            cursor.kind,
            locator,
        )
    )


# ---------------------------------------------------------------------------------------------
# sObject basic info and records


def sobject_info(request: Request) -> Response:
    """``GET …/sobjects/X``: the describeGlobal entry of X and its recent items."""
    obj = _object(request)
    if obj is None:
        return not_found()
    return json_response({"objectDescribe": obj.global_entry(_version(request)), "recentItems": []})


class _RequestError(Exception):
    """A REST request to refuse with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


def _json_complaint(exc: ValueError) -> str:
    """The message of a ``JSON_PARSER_ERROR`` for a body ``json.loads`` refused.

    Besides syntax errors (``JSONDecodeError``), it raises ``UnicodeDecodeError`` for bytes that
    are not UTF-8 and a plain ``ValueError`` for an integer too long to convert (the only other
    failure, as floats are read as ``Decimal``). Neither has the ``msg`` of a syntax error, and
    both are the client's fault (400), not the server's.
    """
    if isinstance(exc, json.JSONDecodeError):
        return f"Unexpected character: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"Invalid UTF-8 byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
    return f"Number with more than {sys.get_int_max_str_digits()} digits"


def _record_body(request_body: bytes, obj: SObjectDef, operation: str) -> dict[str, Any]:
    """A create/update body as store columns (nested ``{"Account": {"Ext__c": …}}`` flattened).

    Raises:
        _RequestError: malformed JSON, unknown fields, or fields the operation cannot set.
    """
    try:
        data = json.loads(request_body or b"{}", parse_float=Decimal)
    except ValueError as exc:
        raise _RequestError(
            error_response(400, "JSON_PARSER_ERROR", _json_complaint(exc))
        ) from None
    if not isinstance(data, dict):
        raise _RequestError(
            error_response(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {obj.name} from a non-object value",
            )
        )
    row, refused = _record_row(data, obj, operation)
    if refused:
        raise _RequestError(_refused_fields_response(refused))
    return row


def _refused_fields_message(refused: Sequence[str]) -> str:
    return (
        f"Unable to create/update fields: {', '.join(refused)}. Please check the security "
        "settings of this field and verify that it is read/write for your profile or "
        "permission set."
    )


def _refused_fields_response(refused: Sequence[str]) -> Response:
    return error_response(
        400, "INVALID_FIELD_FOR_INSERT_UPDATE", _refused_fields_message(refused), refused
    )


def _record_row(
    data: dict[str, Any], obj: SObjectDef, operation: str, *, id_in_body: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """One JSON record as store columns, and the fields the operation may not set.

    Unknown fields and relationships fail the whole request (Salesforce cannot deserialize
    the body); fields that exist but are read-only for ``operation`` are returned, so the
    caller decides whether that fails the request (one record) or just this record
    (sObject Collections). ``id_in_body``: the record names itself by ``Id`` (a collections
    update), so ``Id`` is kept as the key rather than refused as read-only.

    Raises:
        _RequestError: an unknown field or a malformed relationship value.
    """
    row: dict[str, Any] = {}
    refused: list[str] = []
    for key, value in data.items():
        if key == "attributes":
            continue
        fdef = obj.field(key)
        if fdef is None and isinstance(value, dict):
            rel = obj.relationship(key)
            if rel is None:
                raise _RequestError(
                    error_response(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {obj.name}",
                    )
                )
            lookups = {k: v for k, v in value.items() if k != "attributes"}
            if len(lookups) != 1:
                raise _RequestError(
                    error_response(
                        400,
                        "INVALID_FIELD",
                        f"The relationship {key} must name exactly one external id field",
                    )
                )
            ((ext_field, ext_value),) = lookups.items()
            row[f"{rel.relationship_name}.{ext_field}"] = ext_value
            continue
        if fdef is None:
            raise _RequestError(
                error_response(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"
                )
            )
        if fdef.name == "Id" and id_in_body:
            row["Id"] = value
            continue
        allowed = fdef.createable if operation == "insert" else fdef.updateable
        if operation == "upsert":
            allowed = fdef.createable or fdef.updateable
        if not allowed:
            refused.append(fdef.name)
            continue
        row[fdef.name] = value
    return row, refused


def _write_errors(result: Any) -> Response:
    errors = [
        {"message": e.message, "errorCode": e.status_code, "fields": list(e.fields or [])}
        for e in result.errors
    ]
    return json_response(errors, 400)


def _write(
    state: EmulatorState,
    obj: SObjectDef,
    operation: str,
    row: dict[str, Any],
    external_id_field: str | None = None,
) -> Any:
    """One-row ``org.write``; a whole-batch problem becomes a REST 400."""
    from sfbulk.emulator import store

    try:
        kwargs = {"external_id_field": external_id_field} if external_id_field else {}
        return state.org.write(obj.name, operation, [row], **kwargs)[0]
    except store.BatchError as exc:
        message = str(exc).split(" : ")[-1]
        raise _RequestError(error_response(400, "INVALID_FIELD", message)) from None


def _lookup(state: EmulatorState, obj: SObjectDef, record_id: str) -> str:
    """Whether ``record_id`` is a live, deleted or absent record of ``obj``."""
    stored = state.org.retrieve(obj.name, record_id, include_deleted=True)
    if stored is None:
        return "absent"
    return "deleted" if stored.get("IsDeleted") else "live"


def _own_id(obj: SObjectDef, value: str) -> bool:
    return is_valid_id(value) and obj.key_prefix is not None and value[:3] == obj.key_prefix


def _compound_value(obj: SObjectDef, compound: str, values: dict[str, Any]) -> Any:
    """Assemble an address or location value from its component fields (None when all null)."""
    parts: dict[str, Any] = {}
    for fdef in obj.fields.values():
        if fdef.compound_field_name == compound and fdef.name in values:
            key = fdef.name
            stem = compound[: -len("Address")] if compound.endswith("Address") else ""
            if compound.endswith("__c"):
                stem = compound[:-3] + "__"
                key = key[len(stem) :].removesuffix("__s")
            elif stem and key.startswith(stem):
                key = key[len(stem) :]
            parts[key[:1].lower() + key[1:]] = values[fdef.name]
    if all(v is None for v in parts.values()):
        return None
    return dict(sorted(parts.items()))


def _fetch_record(
    state: EmulatorState, obj: SObjectDef, where: str, version: str, wanted: list[str] | None
) -> dict[str, Any] | None:
    """Render one record (all fields, or ``wanted``) found by ``where``; None when absent."""
    fields = [f for f in obj.fields.values() if not f.is_compound]
    if wanted is not None:
        chosen = []
        for name in wanted:
            fdef = obj.field(name)
            if fdef is None:
                raise _RequestError(
                    error_response(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type {obj.name}",
                    )
                )
            chosen.append(fdef)
        fields = chosen
    columns = [f.name for f in fields if not f.is_compound]
    if "Id" not in columns:
        columns.insert(0, "Id")
    cursor = select_rows(state, f"SELECT {', '.join(columns)} FROM {obj.name} WHERE {where}")
    rows = cursor.rows
    if not rows:
        return None
    types = list(cursor.field_types)
    values = {col: rest_value(types[i], rows[0][i]) for i, col in enumerate(cursor.columns)}
    record: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": _record_url(version, obj.name, values["Id"])}
    }
    for fdef in fields if wanted is not None else obj.fields.values():
        if fdef.is_compound:
            record[fdef.name] = _compound_value(obj, fdef.name, values)
        else:
            record[fdef.name] = values.get(fdef.name)
    return record


def _wanted_fields(request: Request) -> list[str] | None:
    text = request.query_params.get("fields")
    if not text:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def sobject_create(request: Request, body: bytes) -> Response:
    """``POST …/sobjects/X``: create one record; 201 ``{"id", "success", "errors"}``."""
    state = _state(request)
    obj = _object(request)
    if obj is None:
        return not_found()
    if not obj.createable:
        return error_response(
            400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support insert"
        )
    try:
        row = _record_body(body, obj, "insert")
        result = _write(state, obj, "insert", row)
    except _RequestError as exc:
        return exc.response
    if not result.success:
        return _write_errors(result)
    return json_response({"id": result.id, "success": True, "errors": []}, 201)


def sobject_record(request: Request, body: bytes) -> Response:
    """``GET|PATCH|DELETE …/sobjects/X/{id}``: read, update or delete one record."""
    state = _state(request)
    obj = _object(request)
    if obj is None:
        return not_found()
    record_id = request.path_params["record_id"]
    if not _own_id(obj, record_id):
        return error_response(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {record_id}",
        )
    id18 = to18(record_id)
    try:
        if request.method == "GET":
            record = _fetch_record(
                state, obj, f"Id = '{id18}'", _version(request), _wanted_fields(request)
            )
            return not_found() if record is None else json_response(record)
        status = _lookup(state, obj, id18)
        if status == "deleted":
            return error_response(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        if status == "absent":
            return not_found()
        if request.method == "DELETE":
            result = _write(state, obj, "delete", {"Id": id18})
        else:
            row = _record_body(body, obj, "update")
            row["Id"] = id18
            result = _write(state, obj, "update", row)
    except _RequestError as exc:
        return exc.response
    if not result.success:
        return _write_errors(result)
    return Response(status_code=204)


def sobject_by_field(request: Request, body: bytes) -> Response:
    """``…/sobjects/X/{a}/{b}``: a record's blob (``a`` an id, ``b`` a base64 field), or the
    record whose external id field ``a`` equals ``b`` (GET) / an upsert on it (PATCH)."""
    state = _state(request)
    obj = _object(request)
    if obj is None:
        return not_found()
    first = request.path_params["first"]
    second = request.path_params["second"]
    version = _version(request)
    try:
        if request.method == "GET" and _own_id(obj, first):
            return _blob(state, obj, to18(first), second)
        fdef = obj.field(first)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            return error_response(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {first}",
            )
        if request.method == "GET":
            quoted = second.replace("\\", "\\\\").replace("'", "\\'")
            record = _fetch_record(
                state, obj, f"{fdef.name} = '{quoted}'", version, _wanted_fields(request)
            )
            return not_found() if record is None else json_response(record)
        row = _record_body(body, obj, "upsert")
        row[fdef.name] = second
        result = _write(state, obj, "upsert", row, external_id_field=fdef.name)
    except _RequestError as exc:
        return exc.response
    if not result.success:
        return _write_errors(result)
    payload = {"id": result.id, "success": True, "errors": [], "created": bool(result.created)}
    return json_response(payload, 201 if result.created else 200)


def _blob(state: EmulatorState, obj: SObjectDef, id18: str, field_name: str) -> Response:
    fdef = obj.field(field_name)
    if fdef is None or fdef.type != "base64":
        return not_found()
    stored = state.org.retrieve(obj.name, id18)
    data = stored.get(fdef.name) if stored is not None else None
    if data is None:
        return not_found()
    if isinstance(data, str):
        data = base64.b64decode(data)
    return Response(bytes(data), 200, media_type="application/octetstream")


def _with_body(handler: Any) -> Any:
    """Adapt a ``(request, body)`` handler: read the body here, run the handler in a thread."""
    from starlette.concurrency import run_in_threadpool

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        return await run_in_threadpool(handler, request, body)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return endpoint


# ---------------------------------------------------------------------------------------------
# sObject Collections

#: Records (or ids) one sObject Collections call takes.
COLLECTION_MAX = 200
EXCEEDED_ID_LIMIT_MESSAGE = (
    "record limit reached. cannot submit more than 200 records into this call"
)
ROLLED_BACK = (
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


@dataclass
class _Pending:
    """One record of a collections request: its object and store row, or an early failure."""

    obj: SObjectDef | None
    row: dict[str, Any] | None
    entry: dict[str, Any] | None = None  # the result, once known


def _error_entry(code: str, message: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": list(fields)}


def _failed(code: str, message: str, fields: Sequence[str] = (), record_id: str | None = None
            ) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": record_id} if record_id else {}
    entry.update(success=False, errors=[_error_entry(code, message, fields)])
    return entry


def _collection_records(body: bytes) -> tuple[bool, list[dict[str, Any]]]:
    """``(allOrNone, records)`` of a create/update/upsert body.

    Raises:
        _RequestError: malformed JSON, no ``records`` list, or more than 200 records.
    """
    try:
        data = json.loads(body or b"null", parse_float=Decimal)
    except ValueError as exc:
        raise _RequestError(
            error_response(400, "JSON_PARSER_ERROR", _json_complaint(exc))
        ) from None
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _RequestError(
            error_response(400, "JSON_PARSER_ERROR", "The request body must be an object "
                           "with a records list of sObjects")
        )
    if len(records) > COLLECTION_MAX:
        raise _RequestError(error_response(400, "EXCEEDED_ID_LIMIT", EXCEEDED_ID_LIMIT_MESSAGE))
    all_or_none = data.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise _RequestError(
            error_response(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
        )
    return all_or_none, records


def _record_type(state: EmulatorState, record: dict[str, Any], default: SObjectDef | None
                 ) -> SObjectDef:
    """The object of a collections record (``attributes.type``, else the URL's object).

    Raises:
        _RequestError: no type, an unknown type, or a type other than the URL's object.
    """
    attributes = record.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not name:
        if default is not None:
            return default
        raise _RequestError(
            error_response(400, "INVALID_TYPE", "Each record must have attributes with a type")
        )
    obj = state.org.catalog.get(str(name))
    if obj is None or (default is not None and obj.name != default.name):
        raise _RequestError(
            error_response(
                400, "INVALID_TYPE", f"sObject type '{name}' is not supported. {_CUSTOM_HINT}"
            )
        )
    return obj


_CUSTOM_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the "
    "entity name. Please reference your WSDL or the describe call for the appropriate names."
)

_SUPPORTS = {"insert": "createable", "update": "updateable", "upsert": "createable",
             "delete": "deletable"}


def _check_operation(obj: SObjectDef, operation: str) -> None:
    if not getattr(obj, _SUPPORTS[operation], True) or (
        operation == "upsert" and not obj.updateable
    ):
        raise _RequestError(
            error_response(
                400,
                "INVALID_TYPE_FOR_OPERATION",
                f"entity type {obj.name} does not support {operation}",
            )
        )


def _pending_records(
    state: EmulatorState,
    operation: str,
    records: list[dict[str, Any]],
    url_object: SObjectDef | None = None,
    external_id_field: str | None = None,
) -> list[_Pending]:
    """Deserialize every record (whole-request errors first), then per-record checks."""
    pending: list[_Pending] = []
    for record in records:
        obj = _record_type(state, record, url_object)
        _check_operation(obj, operation)
        row, refused = _record_row(record, obj, operation, id_in_body=operation == "update")
        item = _Pending(obj, row)
        if operation == "insert" and any(key.lower() == "id" for key in record):
            item.entry = _failed("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        elif operation == "update" and not row.get("Id"):
            item.entry = _failed("MISSING_ARGUMENT", "Id not specified in an update call")
        elif operation == "upsert" and external_id_field and not any(
            key.lower() == external_id_field.lower() and value not in (None, "")
            for key, value in row.items()
        ):
            item.entry = _failed("MISSING_ARGUMENT", f"{external_id_field} not specified")
        elif refused:
            item.entry = _failed(
                "INVALID_FIELD_FOR_INSERT_UPDATE", _refused_fields_message(refused), refused,
                record_id=str(row["Id"]) if row.get("Id") else None,
            )
        pending.append(item)
    return pending


def _result_entry(operation: str, result: Any) -> dict[str, Any]:
    """A store ``RecordResult`` as a collections SaveResult / DeleteResult / UpsertResult."""
    entry: dict[str, Any] = {}
    if result.id and (result.success or operation != "insert"):
        entry["id"] = result.id
    entry["success"] = bool(result.success)
    entry["errors"] = [
        _error_entry(e.status_code, e.message, e.fields or []) for e in result.errors
    ]
    if operation == "upsert":
        entry["created"] = bool(result.created)
    return entry


def _stored_for_write(fdef: Any, value: Any) -> Any:
    """A stored value in a form ``Org.write`` accepts back (used to undo an update)."""
    if value is None or fdef is None:
        return value
    if fdef.type == "boolean":
        return bool(int(value)) if not isinstance(value, str) else value.lower() in ("1", "true")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return str(value)


def _touched_fields(obj: SObjectDef, rows: list[dict[str, Any]]) -> list[str]:
    """The fields a batch of rows writes (relationship columns name their reference field)."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.lower() == "id":
                continue
            if "." in key:
                rel_name = key.split(":")[-1].split(".")[0]
                ref = obj.relationship(rel_name)
                if ref is not None:
                    names.setdefault(ref.name)
                continue
            fdef = obj.field(key)
            if fdef is not None:
                names.setdefault(fdef.name)
    return list(names)


class _Undo:
    """What to reverse when an all-or-none request fails: Salesforce commits nothing then.

    The emulator's store commits each write, so the request's writes are reversed in the
    opposite order: created records are hard-deleted, updated ones get their earlier values
    back (their system timestamps do move), deleted ones are undeleted.
    """

    def __init__(self, state: EmulatorState) -> None:
        self.org = state.org
        self.steps: list[tuple[SObjectDef, str, list[dict[str, Any]]]] = []

    def snapshot(self, obj: SObjectDef, operation: str, rows: list[dict[str, Any]],
                 external_id_field: str | None) -> dict[str, dict[str, Any]]:
        """Stored rows the write may change, by Id (before the write)."""
        if operation not in ("update", "upsert"):
            return {}
        key = "Id" if operation == "update" else (external_id_field or "Id")
        fdef = obj.field(key)
        values = [row[k] for row in rows for k in row if k.lower() == key.lower()]
        values = [str(v) for v in values if v not in (None, "")]
        if fdef is None or not values:
            return {}
        if fdef.name == "Id":
            values = [to18(v) for v in values if is_valid_id(v)]
        snapshot: dict[str, dict[str, Any]] = {}
        for start in range(0, len(values), 100):
            part = values[start:start + 100]
            marks = ", ".join("?" for _ in part)
            cursor_rows = self.org.execute_sql(
                f'SELECT "Id" FROM "{obj.name}" WHERE lower("{fdef.name}") IN ({marks})',
                [v.lower() for v in part],
            )
            for (record_id,) in cursor_rows:
                stored = self.org.retrieve(obj.name, record_id, include_deleted=True)
                if stored is not None:
                    snapshot[record_id] = stored
        return snapshot

    def record(self, obj: SObjectDef, operation: str, rows: list[dict[str, Any]],
               results: list[Any], before: dict[str, dict[str, Any]]) -> None:
        done = [r for r in results if r.success and r.id]
        created = [{"Id": r.id} for r in done if operation == "insert" or r.created]
        if created:
            self.steps.append((obj, "hardDelete", created))
        if operation == "delete" and done:
            self.steps.append((obj, "undelete", [{"Id": r.id} for r in done]))
        updated = [r.id for r in done if operation in ("update", "upsert") and not r.created]
        if updated:
            fields = _touched_fields(obj, rows)
            restore = []
            for record_id in updated:
                stored = before.get(record_id)
                if stored is None:
                    continue
                restore.append({"Id": record_id, **{
                    name: _stored_for_write(obj.field(name), stored.get(name))
                    for name in fields
                    if (f := obj.field(name)) is not None and f.updateable
                }})
            if restore:
                self.steps.append((obj, "update", restore))

    def run(self) -> None:
        for obj, operation, rows in reversed(self.steps):
            results = self.org.write(obj.name, operation, rows)
            failed = [r for r in results if not r.success]
            if failed:
                logger.warning("Undoing an all-or-none %s on %s left %d record(s) as written: %s",
                               operation, obj.name, len(failed), failed[0].errors)


def _save_collection(
    state: EmulatorState,
    operation: str,
    pending: list[_Pending],
    all_or_none: bool,
    external_id_field: str | None = None,
) -> list[dict[str, Any]]:
    """Save runs of same-type records through ``Org.write``; one result per record, in order.

    Raises:
        _RequestError: a whole-batch problem the store reports (an unknown relationship
            column, say).
    """
    from sfbulk.emulator import store

    undo = _Undo(state) if all_or_none else None
    failed = any(item.entry is not None for item in pending)
    position = 0
    while position < len(pending) and not (all_or_none and failed):
        item = pending[position]
        if item.entry is not None:
            position += 1
            continue
        chunk = [item]
        position += 1
        while (position < len(pending) and pending[position].obj is item.obj
               and pending[position].entry is None):
            chunk.append(pending[position])
            position += 1
        obj = item.obj
        assert obj is not None
        rows = [c.row or {} for c in chunk]
        before = undo.snapshot(obj, operation, rows, external_id_field) if undo else {}
        try:
            kwargs = {"external_id_field": external_id_field} if external_id_field else {}
            results = state.org.write(obj.name, operation, rows, **kwargs)
        except store.BatchError as exc:
            if undo is not None:
                undo.run()
            message = str(exc).split(" : ")[-1]
            raise _RequestError(error_response(400, "INVALID_FIELD", message)) from None
        if undo is not None:
            undo.record(obj, operation, rows, results, before)
        for c, result in zip(chunk, results, strict=True):
            c.entry = _result_entry(operation, result)
            failed = failed or not result.success
    if all_or_none and failed:
        if undo is not None:
            undo.run()
        for item in pending:
            if item.entry is None or item.entry["success"]:
                record_id = None
                if operation != "insert":
                    known = item.entry.get("id") if item.entry is not None else None
                    record_id = known or (item.row or {}).get("Id")
                    if record_id and is_valid_id(str(record_id)):
                        record_id = to18(str(record_id))
                item.entry = _failed(*ROLLED_BACK, record_id=record_id)
    entries = [item.entry or {} for item in pending]
    if operation == "upsert":
        for entry in entries:
            entry.setdefault("created", False)
    return entries


def sobject_collections(request: Request, body: bytes) -> Response:
    """``POST|PATCH|DELETE …/composite/sobjects``: create, update (by Id) or delete up to 200
    records in one call; 200 with one result per record, in input order.

    Records of several types are saved in runs of the same type, in order. With
    ``allOrNone`` one failure fails every record (the others answer
    ``ALL_OR_NONE_OPERATION_ROLLED_BACK``) and nothing stays written.
    """
    state = _state(request)
    try:
        if request.method == "DELETE":
            return _delete_collection(state, request)
        operation = "insert" if request.method == "POST" else "update"
        all_or_none, records = _collection_records(body)
        pending = _pending_records(state, operation, records)
        entries = _save_collection(state, operation, pending, all_or_none)
    except _RequestError as exc:
        return exc.response
    return json_response(entries)


def sobject_collections_upsert(request: Request, body: bytes) -> Response:
    """``PATCH …/composite/sobjects/X/{ExternalIdField}``: upsert up to 200 records of X on
    an external id; each result says whether the record was ``created``."""
    state = _state(request)
    obj = _object(request)
    if obj is None:
        return not_found()
    field_name = request.path_params["field"]
    fdef = obj.field(field_name)
    if fdef is None or not (fdef.external_id or fdef.id_lookup or fdef.name == "Id"):
        return error_response(
            404,
            "NOT_FOUND",
            f"Provided external ID field does not exist or is not accessible: {field_name}",
        )
    try:
        all_or_none, records = _collection_records(body)
        pending = _pending_records(state, "upsert", records, obj, fdef.name)
        entries = _save_collection(state, "upsert", pending, all_or_none, fdef.name)
    except _RequestError as exc:
        return exc.response
    return json_response(entries)


def _delete_collection(state: EmulatorState, request: Request) -> Response:
    """``DELETE …/composite/sobjects?ids=…&allOrNone=``: ids of any objects, in order."""
    text = request.query_params.get("ids") or ""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        return error_response(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(ids) > COLLECTION_MAX:
        return error_response(400, "EXCEEDED_ID_LIMIT", EXCEEDED_ID_LIMIT_MESSAGE)
    flag = (request.query_params.get("allOrNone") or "false").lower()
    if flag not in ("true", "false"):
        return error_response(400, "INVALID_QUERY_FILTER_OPERATOR",
                              f"allOrNone must be true or false, not {flag}")
    pending: list[_Pending] = []
    for record_id in ids:
        obj = state.org.catalog.by_key_prefix(record_id[:3]) if is_valid_id(record_id) else None
        if obj is None:
            pending.append(_Pending(None, None, _failed("MALFORMED_ID",
                                                        f"malformed id {record_id}")))
            continue
        _check_operation(obj, "delete")
        pending.append(_Pending(obj, {"Id": record_id}))
    return json_response(_save_collection(state, "delete", pending, flag == "true"))


# ---------------------------------------------------------------------------------------------
# composite/batch


async def composite_batch(request: Request) -> Response:
    """``POST …/composite/batch``: run up to 25 subrequests in order, one API call in all.

    With ``haltOnError`` the subrequests after the first failure are not run and answer
    ``412 BATCH_PROCESSING_HALTED``; the batch itself is still 200.
    """
    from sfbulk.emulator.app import served_version

    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        return error_response(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
    if not isinstance(data, dict) or not isinstance(data.get("batchRequests"), list):
        return error_response(
            400, "JSON_PARSER_ERROR", "The request body must be an object with batchRequests"
        )
    subrequests = data["batchRequests"]
    if not subrequests or len(subrequests) > COMPOSITE_BATCH_MAX:
        return error_response(
            400,
            "INVALID_BATCH_REQUEST",
            f"A batch must contain between 1 and {COMPOSITE_BATCH_MAX} subrequests",
        )
    halt_on_error = bool(data.get("haltOnError", False))
    results: list[dict[str, Any]] = []
    has_errors = False
    halted = False
    for sub in subrequests:
        if halted:
            results.append(
                {
                    "statusCode": 412,
                    "result": [
                        {
                            "errorCode": "BATCH_PROCESSING_HALTED",
                            "message": "Batch processing halted per request",
                        }
                    ],
                }
            )
            continue
        status, result = await _run_subrequest(request, sub, served_version)
        if status >= 400:
            has_errors = True
            halted = halt_on_error
        results.append({"statusCode": status, "result": result})
    return json_response({"hasErrors": has_errors, "results": results})


async def _run_subrequest(request: Request, sub: Any, served_version: Any) -> tuple[int, Any]:
    """Dispatch one subrequest to the app's own routes and return ``(status, parsed body)``."""
    from urllib.parse import urlsplit

    state = _state(request)
    if not isinstance(sub, dict) or not isinstance(sub.get("url"), str):
        return 400, [{"errorCode": "JSON_PARSER_ERROR", "message": "A subrequest needs a url"}]
    method = str(sub.get("method", "GET")).upper()
    url = sub["url"]
    if not url.startswith("/"):
        url = "/services/data/" + url
    parts = urlsplit(url)
    path = parts.path
    match = path.startswith("/services/data/v") and path.split("/")[3][1:]
    if not match or served_version(state.settings, match)[0] != 200:
        return 404, [{"errorCode": "NOT_FOUND", "message": NOT_FOUND_MESSAGE}]
    body = b""
    headers = [
        (k, v)
        for k, v in request.scope["headers"]
        if k.lower() not in (b"content-length", b"content-type")
    ]
    if "richInput" in sub:
        body = json.dumps(sub["richInput"]).encode()
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        **request.scope,
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": parts.query.encode(),
        "headers": headers,
        "state": dict(request.scope.get("state", {})),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app.router(scope, receive, send)
    raw = b"".join(chunks)
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Admin endpoints


def _loopback_only(request: Request) -> Response | None:
    client = request.client
    host = client.host if client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return error_response(403, "FORBIDDEN", "The emulator's admin endpoints answer loopback only")


async def admin_faults(request: Request) -> Response:
    """``GET|POST|DELETE /_emulator/faults``: read, set or clear the fault switches."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    faults = _state(request).faults
    if request.method == "DELETE":
        faults.clear()
        return json_response(faults.snapshot())
    if request.method == "POST":
        raw = await request.body()
        try:
            spec = json.loads(raw or b"{}")
            faults.configure(spec)
        except (ValueError, TypeError) as exc:
            return error_response(400, "INVALID_FAULT", str(exc))
    return json_response(faults.snapshot())


async def admin_expire_sessions(request: Request) -> Response:
    """``POST /_emulator/expire-sessions``: every session expires now; returns how many."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    return json_response({"expired": _state(request).sessions.expire_all()})


async def admin_revoke_refresh_token(request: Request) -> Response:
    """``POST /_emulator/revoke-refresh-token``: refresh grants fail until a reset."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    _state(request).sessions.revoke_refresh_token()
    return json_response({"refresh_token_revoked": True})


def admin_stats(request: Request) -> Response:
    """``GET /_emulator/stats``: usage counters, sessions, faults fired, jobs and records."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    state = _state(request)
    usage = state.usage
    jobs = state.jobs.jobs()
    job_states: dict[str, int] = {}
    for job in jobs:
        key = str(getattr(job, "state", "unknown"))
        job_states[key] = job_states.get(key, 0) + 1
    records: dict[str, int] = {}
    counter = getattr(state.org, "count", None)
    if callable(counter):
        for obj in state.org.catalog:
            try:
                count = counter(obj.name)
            except Exception:  # objects without a table (not stored) are skipped
                count = 0
            if count:
                records[obj.name] = count
    return json_response(
        {
            "url": state.base_url(),
            "uptime_seconds": round(time.time() - state.started_at, 3),
            "usage": {
                name: {"Max": usage.maximum(name), "Used": usage.used(name)}
                for name in usage.names()
            },
            "sessions": {
                "active": state.sessions.active_count(),
                "issued": state.sessions.issued_count,
                "expired": state.sessions.expired_count,
                "refresh_token_revoked": state.sessions.refresh_token_revoked,
            },
            "faults_injected": dict(state.faults.injected),
            "jobs": {"total": len(jobs), "by_state": job_states},
            "records": records,
        }
    )


async def admin_reset(request: Request) -> Response:
    """``POST /_emulator/reset``: back to a fresh start (see :meth:`EmulatorState.reset`)."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    _state(request).reset()
    return json_response({"reset": True})


# ---------------------------------------------------------------------------------------------
# REST query cursors


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    version: str
    kind: str  # "query" or "queryAll"
    touched: float


class QueryLocators:
    """Open REST query results, so ``nextRecordsUrl`` pages come from one stable snapshot.

    A query's records are rendered once, when it runs; later pages are slices of that list,
    unaffected by writes in between, as on Salesforce. Cursors idle for 15 minutes, or beyond
    the newest :data:`MAX_QUERY_LOCATORS`, are dropped.
    """

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, rows: list[dict[str, Any]], version: str, kind: str) -> str:
        """Keep ``rows`` and return the new locator id (``01g…``, 18 characters)."""
        locator = to18("01g" + "".join(secrets.choice(_ALNUM) for _ in range(12)))
        now = time.time()
        with self._lock:
            self._cursors[locator] = _Cursor(rows, version, kind, now)
            self._expire(now)
        return locator

    def get(self, locator: str) -> _Cursor | None:
        """The cursor behind ``locator`` (and mark it used), or None."""
        now = time.time()
        with self._lock:
            self._expire(now)
            cursor = self._cursors.get(locator)
            if cursor is not None:
                cursor.touched = now
                self._cursors.move_to_end(locator)
            return cursor

    def close(self, locator: str) -> None:
        """Forget a cursor whose last page has been served."""
        with self._lock:
            self._cursors.pop(locator, None)

    def clear(self) -> None:
        """Forget every cursor."""
        with self._lock:
            self._cursors.clear()

    def _expire(self, now: float) -> None:
        idle = QUERY_LOCATOR_IDLE_SECONDS
        stale = [k for k, c in self._cursors.items() if now - c.touched > idle]
        for key in stale:
            del self._cursors[key]
        while len(self._cursors) > MAX_QUERY_LOCATORS:
            self._cursors.popitem(last=False)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def routes() -> list[BaseRoute]:
    """REST and admin routes (mounted after Bulk 2.0's ``…/jobs`` routes)."""
    data = "/services/data/v{version}"
    sobject = data + "/sobjects/{sobject}"

    def both(path: str, endpoint: Any, methods: list[str]) -> list[Route]:
        # Salesforce accepts every resource with and without a trailing slash.
        return [
            Route(path, endpoint, methods=methods),
            Route(path + "/", endpoint, methods=methods),
        ]

    return [
        *both("/services/data", versions, ["GET"]),
        *both(data, resources, ["GET"]),
        *both(data + "/limits", limits, ["GET"]),
        *both(data + "/query", rest_query, ["GET"]),
        *both(data + "/queryAll", rest_query, ["GET"]),
        Route(data + "/query/{locator}", rest_query_more, methods=["GET"]),
        Route(data + "/queryAll/{locator}", rest_query_more, methods=["GET"]),
        *both(data + "/composite/batch", composite_batch, ["POST"]),
        *both(data + "/composite/sobjects", _with_body(sobject_collections),
              ["POST", "PATCH", "DELETE"]),
        Route(data + "/composite/sobjects/{sobject}/{field}",
              _with_body(sobject_collections_upsert), methods=["PATCH"]),
        *both(data + "/sobjects", describe_global, ["GET"]),
        *both(sobject + "/describe", describe_object, ["GET"]),
        Route(sobject, sobject_info, methods=["GET"]),
        Route(sobject, _with_body(sobject_create), methods=["POST"]),
        Route(sobject + "/", sobject_info, methods=["GET"]),
        Route(sobject + "/", _with_body(sobject_create), methods=["POST"]),
        Route(
            sobject + "/{record_id}", _with_body(sobject_record), methods=["GET", "PATCH", "DELETE"]
        ),
        Route(
            sobject + "/{first}/{second}", _with_body(sobject_by_field), methods=["GET", "PATCH"]
        ),
        Route("/_emulator/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/expire-sessions", admin_expire_sessions, methods=["POST"]),
        Route("/_emulator/revoke-refresh-token", admin_revoke_refresh_token, methods=["POST"]),
        Route("/_emulator/stats", admin_stats, methods=["GET"]),
        Route("/_emulator/reset", admin_reset, methods=["POST"]),
    ]
