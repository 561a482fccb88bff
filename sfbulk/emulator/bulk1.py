"""Bulk API 1.0 of the emulator: jobs, batches and results under ``/services/async/{version}/``.

The wire shapes follow ``SALESFORCE-API.md`` §2 and the recorded bodies in
``fixtures/salesforce/bulk1/``:

- jobInfo and batchInfo in XML keep the XSD element order and the real layout (root start tag on
  the XML-declaration line, one-space indentation); in JSON their keys are alphabetical,
  ``apiVersion`` is a number and dates end in ``+0000``; batchInfo JSON always has
  ``stateMessage`` (``null`` until a batch fails).
- Responses follow the job's ``contentType`` (JSON for JSON jobs, XML otherwise; ingest results and
  query results in the job's own format), except job creation and state changes, which answer in
  the request's format, and errors raised before a job is known, which follow the request's
  ``Content-Type``. Content types are exactly ``application/xml``, ``application/json`` and
  ``text/csv`` (clients compare them with ``==``); query result files in CSV are
  ``text/csv; charset=UTF-8`` so that clients decoding the stream as text read UTF-8.
- Batches are processed by the shared worker pool as soon as they arrive, also while the job is
  Open; Serial jobs run their batches one at a time. Ingest results have one row per input row in
  input order; query results are spooled to a :class:`~sfbulk.emulator.jobs.ResultFile` and
  served as several result files of ``settings.result_rows_per_file`` rows each.

Choices where Salesforce's behaviour is not evidenced (marked [UNV] in the reference):

- A CSV row whose value has a space before or after its quotes, or whose value count differs from
  the header's, fails alone with ``INVALID_FIELD`` (the rest of the batch is processed).
- More than 10,000 records fail the batch (``InvalidBatch : Exceeded number of records : N.
  Number of records should be less than or equal to 10000``); a field over 131,072 characters or
  a record over 400,000 characters fails that row with ``LIMIT_EXCEEDED``.
- PK chunking on an object without chunking support fails the original batch with
  ``InvalidBatch : PK chunking is not supported for entity: X``; a ``chunkSize`` above 250,000 is
  refused when the job is created (``InvalidJob``).
- Closing or aborting a job that is no longer Open answers ``InvalidJobState``.
- A query with zero rows in a JSON job returns ``[ ]``; in an XML job an empty ``queryResult``.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import itertools
import json
import logging
import math
import operator
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sfbulk.emulator.ingest import (
    BadRow,
    ParentLocks,
    Utf8Error,
    bad_row_error,
    decode_utf8,
    error_cell,
    lock_error,
    parent_keys,
    split_csv,
)
from sfbulk.emulator.jobs import (
    JobEngine,
    ResultFile,
    elapsed_ms,
    format_json_datetime,
    format_xml_datetime,
    now,
    spool_csv_query,
)

logger = logging.getLogger(__name__)

NS = "http://www.force.com/2009/06/asyncapi/dataload"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

XML_TYPE = "application/xml"
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
#: Query result files in CSV carry a charset so that text decoding clients read UTF-8.
QUERY_CSV_TYPE = "text/csv; charset=UTF-8"

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
OPERATIONS = INGEST_OPERATIONS + QUERY_OPERATIONS
#: Job contentType -> the batch request Content-Type it expects.
CONTENT_TYPES = {
    "CSV": "text/csv",
    "XML": "application/xml",
    "JSON": "application/json",
    "ZIP_CSV": "zip/csv",
    "ZIP_XML": "zip/xml",
    "ZIP_JSON": "zip/json",
}
CONCURRENCY_MODES = {"Parallel": "Parallel", "Serial": "Serial", "0": "Parallel", "1": "Serial"}

#: jobInfo elements in the XSD order (WSC reads them in this order and skips anything else).
JOB_FIELDS = (
    "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
    "externalIdFieldName", "concurrencyMode", "contentType", "numberBatchesQueued",
    "numberBatchesInProgress", "numberBatchesCompleted", "numberBatchesFailed",
    "numberBatchesTotal", "numberRecordsProcessed", "numberRetries", "apiVersion",
    "assignmentRuleId", "numberRecordsFailed", "totalProcessingTime",
    "apiActiveProcessingTime", "apexProcessingTime",
)  # fmt: skip
#: Elements a job creation request may carry.
CREATE_FIELDS = frozenset(
    ("operation", "object", "state", "externalIdFieldName", "concurrencyMode", "contentType",
     "assignmentRuleId")
)  # fmt: skip

# Limits (SALESFORCE-API.md §2.12).
MAX_BATCH_BYTES = 10_000_000
MAX_BATCH_CHARACTERS = 10_000_000
MAX_BATCH_RECORDS = 10_000
MAX_FIELD_CHARACTERS = 131_072
MAX_RECORD_CHARACTERS = 400_000
MAX_FIELDS_PER_RECORD = 5_000
MAX_ZIP_UNCOMPRESSED_BYTES = 20 * 1024 * 1024
MAX_ZIP_FILES = 1_000
MAX_ZIP_NAME_BYTES = 512
MAX_PK_CHUNK_SIZE = 250_000
DEFAULT_PK_CHUNK_SIZE = 100_000
#: Default rows per query result file when the settings name none.
DEFAULT_RESULT_ROWS_PER_FILE = 100_000

NO_RECORDS = b"Records not found for this query"
#: Rows formatted per step when spooling query results.
_QUERY_CHUNK_ROWS = 5_000
_STREAM_CHUNK_BYTES = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Errors


class Bulk1Error(Exception):
    """An error answered as a Bulk 1.0 ``error`` body.

    Attributes:
        status: HTTP status (400 for nearly everything, as on Salesforce).
        code: ``exceptionCode`` (``InvalidJob``, ``InvalidBatch``, ``InvalidSessionId``, …).
        message: ``exceptionMessage``.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class BatchFailure(Exception):
    """The whole batch fails; ``str(self)`` is its ``stateMessage`` (``InvalidBatch : …``)."""


def error_body(code: str, message: str, as_json: bool) -> tuple[bytes, str]:
    """The Bulk 1.0 error body in the recorded layout, and its content type.

    JSON is compact (``{"exceptionCode":"InvalidBatch",...}``) like the recorded
    ``bulk1/error_invalid_batch.json`` and every Bulk 1.0 JSON jobInfo and batchInfo.
    """
    if as_json:
        body = json.dumps({"exceptionCode": code, "exceptionMessage": message},
                          separators=(",", ":"))
        return body.encode(), JSON_TYPE
    xml = (
        f'{XML_DECLARATION}<error\n   xmlns="{NS}">\n'
        f" <exceptionCode>{escape(code)}</exceptionCode>\n"
        f" <exceptionMessage>{escape(message)}</exceptionMessage>\n"
        "</error>"
    )
    return xml.encode(), XML_TYPE


# --------------------------------------------------------------------------------------------
# Job and batch records


@dataclass
class PkChunking:
    """The parsed ``Sforce-Enable-PKChunking`` header of a job."""

    chunk_size: int = DEFAULT_PK_CHUNK_SIZE
    parent: str | None = None
    start_row: str | None = None


@dataclass
class Bulk1Batch:
    """One batch and what the emulator keeps for it."""

    id: str
    job_id: str
    created: datetime
    request: bytes
    state: str = "Queued"
    state_message: str | None = None
    modstamp: datetime | None = None
    records_processed: int = 0
    records_failed: int = 0
    total_ms: int = 0
    api_ms: int = 0
    results: ResultFile | None = None
    #: Query batches: (first row, row count) of each result id, in order.
    result_pages: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: PK chunk batches: the id range ``[lo, hi)`` this batch reads (hi None for the last)
    #: and the field holding those ids (``Id``, or the parent's lookup with ``parent=``).
    chunk: tuple[str, str | None] | None = None
    chunk_field: str = "Id"
    #: With ``parent=``: this chunk also reads the rows whose parent lookup is empty (the
    #: first chunk does, so that no row falls between the parents' id ranges).
    chunk_nulls: bool = False
    #: Parent ids this batch writes under (for the lock-contention fault).
    parents: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.modstamp is None:
            self.modstamp = self.created

    def info(self) -> dict[str, Any]:
        """batchInfo fields in wire order (dates as datetimes)."""
        return {
            "id": self.id,
            "jobId": self.job_id,
            "state": self.state,
            "stateMessage": self.state_message,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "numberRecordsProcessed": self.records_processed,
            "numberRecordsFailed": self.records_failed,
            "totalProcessingTime": self.total_ms,
            "apiActiveProcessingTime": self.api_ms,
            "apexProcessingTime": 0,
        }


@dataclass
class Bulk1Job:
    """One Bulk 1.0 job, its batches and its settings."""

    id: str
    operation: str
    object: str
    created_by: str
    created: datetime
    api_version: str
    content_type: str = "XML"
    concurrency_mode: str = "Parallel"
    external_id_field: str | None = None
    assignment_rule_id: str | None = None
    pk_chunking: PkChunking | None = None
    disable_retry: bool = False
    state: str = "Open"
    modstamp: datetime | None = None
    batches: list[Bulk1Batch] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Parent ids referenced by this job's batches that are being processed.
    active_parents: ParentLocks = field(default_factory=ParentLocks, repr=False)

    def __post_init__(self) -> None:
        if self.modstamp is None:
            self.modstamp = self.created

    @property
    def is_query(self) -> bool:
        return self.operation in QUERY_OPERATIONS

    @property
    def serial(self) -> bool:
        return self.concurrency_mode == "Serial"

    @property
    def wants_json(self) -> bool:
        """Whether this job's responses are JSON (JSON and ZIP_JSON jobs)."""
        return self.content_type in ("JSON", "ZIP_JSON")

    @property
    def data_format(self) -> str:
        """``CSV``, ``XML`` or ``JSON``: the format of the records and the results."""
        return self.content_type.removeprefix("ZIP_")

    def batch(self, batch_id: str) -> Bulk1Batch | None:
        with self.lock:
            for batch in self.batches:
                if batch.id == batch_id or batch.id[:15] == batch_id:
                    return batch
        return None

    def info(self) -> dict[str, Any]:
        """jobInfo fields in XSD order (None = element left out), counters from the batches."""
        with self.lock:
            batches = list(self.batches)
            state = self.state
            modstamp = self.modstamp
        counts = {"Queued": 0, "InProgress": 0, "Completed": 0, "Failed": 0}
        processed = failed = total_ms = api_ms = 0
        for batch in batches:
            if batch.state in counts:
                counts[batch.state] += 1
            processed += batch.records_processed
            failed += batch.records_failed
            total_ms += batch.total_ms
            api_ms += batch.api_ms
            if batch.modstamp is not None and modstamp is not None and batch.modstamp > modstamp:
                modstamp = batch.modstamp
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": modstamp,
            "state": state,
            "externalIdFieldName": (
                self.external_id_field if self.operation == "upsert" else None
            ),
            "concurrencyMode": self.concurrency_mode,
            "contentType": self.content_type,
            "numberBatchesQueued": counts["Queued"],
            "numberBatchesInProgress": counts["InProgress"],
            "numberBatchesCompleted": counts["Completed"],
            "numberBatchesFailed": counts["Failed"],
            "numberBatchesTotal": len(batches),
            "numberRecordsProcessed": processed,
            "numberRetries": 0,
            "apiVersion": self.api_version,
            "assignmentRuleId": self.assignment_rule_id,
            "numberRecordsFailed": failed,
            "totalProcessingTime": total_ms,
            "apiActiveProcessingTime": api_ms,
            "apexProcessingTime": 0,
        }

    def discard_results(self) -> None:
        """Free every result file (called when the engine shuts down)."""
        with self.lock:
            batches = list(self.batches)
        for batch in batches:
            if batch.results is not None:
                batch.results.discard()


# --------------------------------------------------------------------------------------------
# Rendering jobInfo / batchInfo


def _xml_value(value: Any) -> str:
    if isinstance(value, datetime):
        return format_xml_datetime(value)
    return escape(str(value))


def _xml_children(info: dict[str, Any], indent: str) -> str:
    return "".join(
        f"{indent}<{name}>{_xml_value(value)}</{name}>\n"
        for name, value in info.items()
        if value is not None
    )


def _json_info(info: dict[str, Any], *, batch: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(info):
        value = info[name]
        if value is None and not (batch and name == "stateMessage"):
            continue
        if isinstance(value, datetime):
            value = format_json_datetime(value)
        elif name == "apiVersion":
            value = float(value)
        out[name] = value
    return out


def _dump_json(value: Any, pretty: bool) -> bytes:
    if pretty:
        return json.dumps(value, indent=2, separators=(",", " : "), ensure_ascii=False).encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def render_job(job: Bulk1Job, as_json: bool, pretty: bool = False) -> bytes:
    """jobInfo as XML (XSD order, real layout) or JSON (alphabetical)."""
    return _render_info("jobInfo", job.info(), as_json, pretty, batch=False)


def render_batch(batch: Bulk1Batch, as_json: bool, pretty: bool = False) -> bytes:
    """batchInfo as XML (``stateMessage`` only when set) or JSON (always with stateMessage)."""
    return _render_info("batchInfo", batch.info(), as_json, pretty, batch=True)


def _render_info(
    root: str, info: dict[str, Any], as_json: bool, pretty: bool, *, batch: bool
) -> bytes:
    if as_json:
        return _dump_json(_json_info(info, batch=batch), pretty)
    return (
        f'{XML_DECLARATION}<{root}\n   xmlns="{NS}">\n{_xml_children(info, " ")}</{root}>'
    ).encode()


def render_batch_list(
    batches: Sequence[Bulk1Batch], as_json: bool, pretty: bool = False
) -> bytes:
    """batchInfoList: XML ``<batchInfoList>`` or JSON ``{"batchInfo": [...]}``."""
    if as_json:
        infos = [_json_info(b.info(), batch=True) for b in batches]
        return _dump_json({"batchInfo": infos}, pretty)
    items = "".join(
        f" <batchInfo>\n{_xml_children(b.info(), '  ')} </batchInfo>\n" for b in batches
    )
    return f'{XML_DECLARATION}<batchInfoList\n   xmlns="{NS}">\n{items}</batchInfoList>'.encode()


# --------------------------------------------------------------------------------------------
# Responses: exact content types, optional gzip, streaming


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def _response(
    request: Request,
    body: bytes,
    content_type: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response whose Content-Type is exactly ``content_type`` (Starlette would add a charset
    to ``text/*``), gzip-compressed when the client accepts it."""
    extra = dict(headers or {})
    extra["content-type"] = content_type
    if _accepts_gzip(request):
        body = gzip.compress(body, compresslevel=5)
        extra["content-encoding"] = "gzip"
        extra["vary"] = "Accept-Encoding"
    return Response(body, status_code=status, headers=extra)


def _streaming(request: Request, chunks: Iterator[bytes], content_type: str,
               length: int | None = None) -> Response:
    """Stream ``chunks`` (read in a worker thread by Starlette), gzip-compressed on request.

    An uncompressed body of known ``length`` says so in Content-Length rather than being sent
    in chunked transfer encoding, which clients decode a piece at a time.
    """
    headers = {"content-type": content_type}
    if _accepts_gzip(request):
        headers["content-encoding"] = "gzip"
        headers["vary"] = "Accept-Encoding"
        chunks = _gzip_chunks(chunks)
    elif length is not None:
        headers["content-length"] = str(length)
    return StreamingResponse(chunks, headers=headers)


def _gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(5, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _error_response(request: Request, exc: Bulk1Error, as_json: bool) -> Response:
    body, content_type = error_body(exc.code, exc.message, as_json)
    return _response(request, body, content_type, exc.status)


def _request_wants_json(request: Request) -> bool:
    """Whether the request body is JSON: the format used before a job is known."""
    return "json" in request.headers.get("content-type", "").lower()


def _pretty(request: Request) -> bool:
    return request.headers.get("x-prettyprint", "").strip().lower() in ("1", "true")


# --------------------------------------------------------------------------------------------
# Request helpers


def _state(request: Request) -> Any:
    return request.app.state.emulator


def _engine(request: Request) -> JobEngine:
    return _state(request).jobs


def _check_version(request: Request) -> str:
    """The path's API version as ``NN.0``; unknown or retired versions are refused."""
    from sfbulk.emulator.app import served_version

    status, version = served_version(_state(request).settings, request.path_params["version"])
    if status != 200 or version is None:
        raise Bulk1Error("InvalidVersion", "Invalid api version specified on URL")
    return version


def _check_session(request: Request) -> Any:
    from sfbulk.emulator.sessions import bulk1_session

    session = bulk1_session(request)
    if session is None:
        raise Bulk1Error("InvalidSessionId", "Invalid session id")
    return session


async def _read_body(request: Request, limit: int = MAX_BATCH_BYTES) -> bytes:
    """The request body, gunzipped when sent with ``Content-Encoding: gzip``.

    Raises:
        Bulk1Error: 415 for other encodings; ``ClientInputError`` past ``limit`` bytes (the
            compressed and the decompressed size both count).
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise Bulk1Error(
            "ClientInputError", f"Unsupported Content-Encoding: {encoding}", status=415
        )
    too_big = Bulk1Error(
        "ClientInputError", f"Failed to read request. Exceeded max size limit of {limit}"
    )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "gzip":
        decompressor = zlib.decompressobj(31)
        try:
            body = decompressor.decompress(body, limit + 1)
        except zlib.error:
            raise Bulk1Error(
                "ClientInputError", "Failed to read request. Invalid gzip content"
            ) from None
        if len(body) > limit or decompressor.unconsumed_tail:
            raise too_big
    return body


def _job_or_error(request: Request, *, job_format: bool = True) -> Bulk1Job:
    """The job of the path; with ``job_format`` later errors are answered in its format."""
    job = _engine(request).get(request.path_params["job_id"], kind=Bulk1Job)
    if job is None:
        raise Bulk1Error("InvalidJob", f"Invalid job id: {request.path_params['job_id']}")
    if job_format:
        request.scope["sfbulk.bulk1_json"] = job.wants_json
    return job


def _parse_job_body(body: bytes, as_json: bool) -> dict[str, str]:
    """The elements of a jobInfo request body (XML or JSON), as strings.

    Raises:
        Bulk1Error: ``InvalidJob`` "Unable to parse Job" for anything unreadable or unknown.
    """
    unreadable = Bulk1Error("InvalidJob", "Unable to parse Job")
    if as_json:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise unreadable from None
        if not isinstance(data, dict):
            raise unreadable
        values: dict[str, str] = {}
        for key, value in data.items():
            if key not in CREATE_FIELDS or isinstance(value, (dict, list)):
                raise unreadable
            if value is None:
                continue
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return values
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        raise Bulk1Error("InvalidXml", "Unable to parse Job: the body is not valid XML") from None
    if _local(root.tag) != "jobInfo":
        raise unreadable
    values = {}
    for child in root:
        name = _local(child.tag)
        if name not in CREATE_FIELDS or len(child):
            raise unreadable
        values[name] = (child.text or "").strip()
    return values


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_pk_chunking(header: str | None) -> PkChunking | None:
    """Parse ``Sforce-Enable-PKChunking``: ``true``, ``false``, ``chunkSize=N``, ``parent=X``,
    ``startRow=ID``, separated by ``;`` (spaces and a trailing ``;`` allowed, case-insensitive).

    Raises:
        Bulk1Error: ``InvalidJob`` for an unknown option or a chunk size outside 1..250,000.
    """
    if header is None or not header.strip():
        return None
    result = PkChunking()
    enabled = False
    for part in header.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep and key in ("true", "false"):
            if key == "false":
                return None
            enabled = True
        elif sep and key == "chunksize":
            if not value.isdigit() or not 0 < int(value) <= MAX_PK_CHUNK_SIZE:
                raise Bulk1Error(
                    "InvalidJob",
                    f"Invalid value for chunkSize: {value}. The chunk size must be between 1 "
                    f"and {MAX_PK_CHUNK_SIZE}",
                )
            result.chunk_size = int(value)
            enabled = True
        elif sep and key == "parent" and value:
            result.parent = value
            enabled = True
        elif sep and key == "startrow" and value:
            if not re.fullmatch(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?", value):
                raise Bulk1Error("InvalidJob", f"Invalid value for startRow: {value}")
            result.start_row = value
            enabled = True
        else:
            raise Bulk1Error(
                "InvalidJob", f"Invalid Sforce-Enable-PKChunking header option: {part}"
            )
    return result if enabled else None


# --------------------------------------------------------------------------------------------
# Ingest payloads: CSV, JSON, XML, zip


class ParsedBatch:
    """Records of an ingest batch: ``rows[i]`` is a dict for Org.write, or the error that row
    failed with while parsing (``(status_code, message, fields)``).

    A CSV batch whose every record is full (every cell sent, none ``#N/A``) keeps its records
    as ``table`` (cells in ``columns`` order, for ``Org.write_rows``); ``rows`` is then built
    from it only when asked for.
    """

    def __init__(
        self,
        rows: list[dict[str, Any] | tuple[str, str, tuple[str, ...]]] | None,
        columns: list[str],
        table: list[list[str]] | None = None,
    ) -> None:
        if rows is None and table is None:
            raise ValueError("a parsed batch needs its rows or its table")
        self._rows = rows
        self.columns = columns
        self.table = table

    @property
    def rows(self) -> list[dict[str, Any] | tuple[str, str, tuple[str, ...]]]:
        if self._rows is None:
            assert self.table is not None
            self._rows = list(map(dict, map(zip, itertools.repeat(self.columns), self.table)))
        return self._rows


def _check_header(header: list[str]) -> None:
    if len(header) > MAX_FIELDS_PER_RECORD:
        raise BatchFailure(f"InvalidBatch : Exceeded max number of fields: {MAX_FIELDS_PER_RECORD}")
    seen: set[str] = set()
    for name in header:
        lowered = name.lower()
        if lowered in seen:
            raise BatchFailure(f"InvalidBatch : Duplicate field name : {name}")
        seen.add(lowered)


def _check_count(count: int) -> None:
    if count > MAX_BATCH_RECORDS:
        raise BatchFailure(
            f"InvalidBatch : Exceeded number of records : {count}. Number of records should be "
            f"less than or equal to {MAX_BATCH_RECORDS}"
        )


def _limit_error(row: dict[str, Any]) -> tuple[str, str, tuple[str, ...]] | None:
    total = 0
    for name, value in row.items():
        size = len(value) if isinstance(value, (str, bytes)) else 0
        if size > MAX_FIELD_CHARACTERS:
            return (
                "LIMIT_EXCEEDED",
                f"Field value exceeds the maximum of {MAX_FIELD_CHARACTERS} characters",
                (name,),
            )
        total += size
    if total > MAX_RECORD_CHARACTERS:
        return (
            "LIMIT_EXCEEDED",
            f"Record exceeds the maximum of {MAX_RECORD_CHARACTERS} characters",
            (),
        )
    return None


def _all_full_rows(body: list[list[str] | BadRow], width: int, surely_within: int) -> bool:
    """Whether every record is a list of ``width`` cells, none empty or ``#N/A``, adding up to
    at most ``surely_within`` characters: the common batch, checked a whole column of records
    at a time without a Python-level step per row."""
    if not body or set(map(type, body)) != {list} or set(map(len, body)) != {width}:
        return False
    contains = operator.contains
    if any(map(contains, body, itertools.repeat(""))):
        return False
    if any(map(contains, body, itertools.repeat("#N/A"))):
        return False
    return max(map(len, map("".join, body))) <= surely_within


def parse_csv_batch(data: bytes) -> ParsedBatch:
    """CSV records: an empty cell leaves the field out (unchanged), ``#N/A`` sets null."""
    text = _decode(data)
    if len(text) > MAX_BATCH_CHARACTERS:
        raise BatchFailure(
            f"InvalidBatch : Exceeded max number of characters: {MAX_BATCH_CHARACTERS}"
        )
    records = split_csv(text)
    if not records:
        raise BatchFailure("InvalidBatch : Records not processed")
    header = records[0]
    if isinstance(header, str):
        raise BatchFailure(f"InvalidBatch : Failed to parse CSV header: {header}")
    _check_header(header)
    _check_count(len(records) - 1)
    width = len(header)
    # A row whose cells add up to no more than this passes both limits without a closer look.
    surely_within = min(MAX_FIELD_CHARACTERS, MAX_RECORD_CHARACTERS)
    body = records[1:]
    if _all_full_rows(body, width, surely_within):
        # Every row well formed, of the header's width, without an empty or #N/A cell and
        # within the limits: the rows the loop below would build, built in C.
        return ParsedBatch(None, list(header), body)  # type: ignore[arg-type]  # all lists
    rows: list[dict[str, Any] | tuple[str, str, tuple[str, ...]]] = []
    for record in body:
        if isinstance(record, BadRow):
            rows.append(bad_row_error(record))
            continue
        if len(record) != width:
            rows.append((
                "INVALID_FIELD",
                f"Row has {len(record)} values but the header has {width} fields",
                (),
            ))
            continue
        if "" not in record and "#N/A" not in record:
            # The common full row: no cell to leave out or null.
            row: dict[str, Any] = dict(zip(header, record, strict=True))
        else:
            row = {}
            for name, cell in zip(header, record, strict=True):
                if cell == "":
                    continue
                row[name] = None if cell == "#N/A" else cell
        if sum(map(len, record)) <= surely_within:
            # The row's values are at most its cells: no field or record limit can be exceeded.
            rows.append(row)
        else:
            rows.append(_limit_error(row) or row)
    if not rows:
        raise BatchFailure("InvalidBatch : Records not processed")
    return ParsedBatch(rows, list(header))


def _decode(data: bytes) -> str:
    try:
        return decode_utf8(data)
    except Utf8Error as exc:
        raise BatchFailure(f"InvalidBatch : Failed to read the batch: {exc}") from None


def _flatten_json_record(record: dict[str, Any]) -> dict[str, Any]:
    """``{"Account": {"Ext__c": "x"}}`` -> ``{"Account.Ext__c": "x"}``; a nested
    ``attributes.type`` makes the polymorphic form ``Type:Rel.Field``."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            type_name = None
            attributes = value.get("attributes")
            if isinstance(attributes, dict):
                type_name = attributes.get("type")
            for sub_key, sub_value in value.items():
                if sub_key == "attributes":
                    continue
                if isinstance(sub_value, (dict, list)):
                    raise BatchFailure(
                        f"InvalidBatch : Relationship {key} may only reference one level"
                    )
                column = f"{key}.{sub_key}"
                row[f"{type_name}:{column}" if type_name else column] = sub_value
        elif isinstance(value, list):
            raise BatchFailure(f"InvalidBatch : Field {key} cannot hold a list")
        else:
            row[key] = value
    return row


def parse_json_batch(data: bytes) -> ParsedBatch:
    """JSON records: ``null`` sets a field to null, nested objects reference parents."""
    text = _decode(data)
    if len(text) > MAX_BATCH_CHARACTERS:
        raise BatchFailure(
            f"InvalidBatch : Exceeded max number of characters: {MAX_BATCH_CHARACTERS}"
        )
    try:
        records = json.loads(text)
    except ValueError as exc:
        raise BatchFailure(f"InvalidBatch : Failed to deserialize JSON: {exc}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BatchFailure(
            "InvalidBatch : Failed to deserialize JSON: expected an array of objects"
        )
    if not records:
        raise BatchFailure("InvalidBatch : Records not processed")
    _check_count(len(records))
    rows: list[dict[str, Any] | tuple[str, str, tuple[str, ...]]] = []
    columns: dict[str, None] = {}
    for record in records:
        row = _flatten_json_record(record)
        if len(row) > MAX_FIELDS_PER_RECORD:
            raise BatchFailure(
                f"InvalidBatch : Exceeded max number of fields: {MAX_FIELDS_PER_RECORD}"
            )
        columns.update(dict.fromkeys(row))
        rows.append(_limit_error(row) or row)
    return ParsedBatch(rows, list(columns))


def _xml_nil(element: Element) -> bool:
    return element.get(f"{{{XSI}}}nil", "").lower() == "true"


def parse_xml_batch(data: bytes) -> ParsedBatch:
    """XML records (``<sObjects><sObject>…``): ``xsi:nil="true"`` sets null, an empty element
    leaves the field unchanged, ``<Rel><sObject><Ext__c>…`` references a parent (with
    ``<type>`` for polymorphic relationships)."""
    try:
        root = SafeET.fromstring(data)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise BatchFailure(f"InvalidBatch : Failed to parse XML: {exc}") from None
    if _local(root.tag) != "sObjects":
        raise BatchFailure("InvalidBatch : The root element must be sObjects")
    records = list(root)
    if not records:
        raise BatchFailure("InvalidBatch : Records not processed")
    _check_count(len(records))
    rows: list[dict[str, Any] | tuple[str, str, tuple[str, ...]]] = []
    columns: dict[str, None] = {}
    for record in records:
        if _local(record.tag) != "sObject":
            raise BatchFailure(f"InvalidBatch : Unexpected element {_local(record.tag)}")
        row: dict[str, Any] = {}
        for child in record:
            name = _local(child.tag)
            nested = list(child)
            if nested:
                inner = nested[0]
                if _local(inner.tag) != "sObject" or len(nested) != 1:
                    raise BatchFailure(
                        f"InvalidBatch : Relationship {name} must hold one sObject element"
                    )
                type_name = None
                values: dict[str, Any] = {}
                for leaf in inner:
                    leaf_name = _local(leaf.tag)
                    if leaf_name == "type":
                        type_name = (leaf.text or "").strip()
                    else:
                        values[leaf_name] = None if _xml_nil(leaf) else (leaf.text or "")
                for leaf_name, value in values.items():
                    column = f"{name}.{leaf_name}"
                    if value != "":
                        row[f"{type_name}:{column}" if type_name else column] = value
            elif _xml_nil(child):
                row[name] = None
            elif child.text:
                row[name] = child.text
        if len(row) > MAX_FIELDS_PER_RECORD:
            raise BatchFailure(
                f"InvalidBatch : Exceeded max number of fields: {MAX_FIELDS_PER_RECORD}"
            )
        columns.update(dict.fromkeys(row))
        rows.append(_limit_error(row) or row)
    return ParsedBatch(rows, list(columns))


_PARSERS: dict[str, Callable[[bytes], ParsedBatch]] = {
    "CSV": parse_csv_batch,
    "JSON": parse_json_batch,
    "XML": parse_xml_batch,
}


def parse_zip_batch(data: bytes, data_format: str, obj: Any) -> ParsedBatch:
    """A zip batch: ``request.txt`` at the root holds the records; base64 fields name binary
    files in the zip as ``#path``, which are loaded as bytes."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BatchFailure("InvalidBatch : The batch is not a valid zip file") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_FILES:
            raise BatchFailure(
                f"InvalidBatch : The zip file holds more than {MAX_ZIP_FILES} files"
            )
        if sum(info.file_size for info in members) > MAX_ZIP_UNCOMPRESSED_BYTES:
            raise BatchFailure(
                "InvalidBatch : The unzipped content exceeds the maximum of "
                f"{MAX_ZIP_UNCOMPRESSED_BYTES} bytes"
            )
        for info in members:
            if len(info.filename.encode("utf-8")) > MAX_ZIP_NAME_BYTES:
                raise BatchFailure(
                    f"InvalidBatch : File name longer than {MAX_ZIP_NAME_BYTES} bytes: "
                    f"{info.filename[:40]}…"
                )
        names = {info.filename: info for info in members}
        if "request.txt" not in names:
            raise BatchFailure("InvalidBatch : The zip file has no request.txt at its root")
        try:
            manifest = archive.read("request.txt")
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise BatchFailure(f"InvalidBatch : Unable to read request.txt: {exc}") from None
        parsed = _PARSERS[data_format](manifest)
        binary_fields = {
            name.lower()
            for name in parsed.columns
            if (definition := obj.field(name)) is not None and definition.type == "base64"
        }
        if not binary_fields:
            return parsed
        for index, row in enumerate(parsed.rows):
            if not isinstance(row, dict):
                continue
            for name, value in list(row.items()):
                if name.lower() not in binary_fields or value is None:
                    continue
                reference = str(value)
                path = reference[1:] if reference.startswith("#") else None
                if path is None or path not in names:
                    parsed.rows[index] = (
                        "INVALID_FIELD",
                        f"Binary file not found in the zip: {reference}",
                        (name,),
                    )
                    break
                row[name] = archive.read(path)
    return parsed


# --------------------------------------------------------------------------------------------
# Ingest results


#: The quoted empty cell of a row without errors.
_EMPTY_CELL = '""'


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass
class _Outcome:
    """One ingest row's outcome (an Org.write RecordResult, or a parse/limit/lock failure)."""

    id: str | None
    success: bool
    created: bool
    errors: list[Any]


@dataclass
class _Error:
    status_code: str
    message: str
    fields: Sequence[str]


def encode_ingest_results(outcomes: Sequence[Any], data_format: str) -> ResultFile:
    """Per-row results in the job's format, in input order."""
    if data_format == "CSV":
        result = ResultFile(b'"Id","Success","Created","Error"\n')
        created = _created_ids(outcomes)
        if created is not None:
            # Every row created: one join gives the lines the loop below would (ids hold no
            # quote), and the result file finds where each ends when a page needs it.
            result.extend_block(
                ('"' + '","true","true",""\n"'.join(created) + '","true","true",""\n').encode(),
                None, len(created),
            )
            result.finish()
            return result
        result.extend_text([
            f'"{o.id or ""}","{"true" if o.success else "false"}",'
            f'"{"true" if o.created else "false"}",'
            f'{_csv_cell(error_cell(o.errors)) if o.errors else _EMPTY_CELL}\n'
            for o in outcomes
        ])
    elif data_format == "JSON":
        result = ResultFile(b"[", footer=b"]", separator=b",")
        result.extend_text([
            json.dumps({
                "success": o.success,
                "created": o.created,
                "id": o.id,
                "errors": [
                    {"statusCode": e.status_code, "message": e.message, "fields": list(e.fields)}
                    for e in o.errors
                ],
            }, separators=(",", ":"), ensure_ascii=False)
            for o in outcomes
        ])
    else:
        result = ResultFile(
            f'{XML_DECLARATION}\n<results xmlns="{NS}">\n'.encode(), footer=b"</results>"
        )
        result.extend_text([_xml_result(o) for o in outcomes])
    result.finish()
    return result


_SUCCESS = operator.attrgetter("success")


def _created_ids(outcomes: Sequence[Any]) -> list[str] | None:
    """The new record ids when every outcome is a successful create without errors, else None."""
    if not outcomes or not all(map(operator.attrgetter("created"), outcomes)):
        return None
    if not all(map(operator.attrgetter("success"), outcomes)):
        return None
    if any(map(operator.attrgetter("errors"), outcomes)):
        return None
    ids = list(map(operator.attrgetter("id"), outcomes))
    if None in ids or '"' in "".join(ids):
        return None
    return ids


def _xml_result(outcome: Any) -> str:
    parts = [" <result>\n"]
    for error in outcome.errors:
        parts.append("  <errors>\n")
        parts.extend(f"   <fields>{escape(name)}</fields>\n" for name in error.fields)
        parts.append(f"   <message>{escape(error.message)}</message>\n")
        parts.append(f"   <statusCode>{escape(error.status_code)}</statusCode>\n")
        parts.append("  </errors>\n")
    parts.append(
        f"  <id>{escape(outcome.id)}</id>\n"
        if outcome.id
        else f'  <id xmlns:xsi="{XSI}" xsi:nil="true"/>\n'
    )
    parts.append(f"  <success>{'true' if outcome.success else 'false'}</success>\n")
    parts.append(f"  <created>{'true' if outcome.created else 'false'}</created>\n")
    parts.append(" </result>\n")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Query results


def java_double(value: float) -> str:
    """``Double.toString``: plain between 1e-3 and 1e7 (``1000.0``), else ``9.12260031E8``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(float(value))
        return text if "." in text else text + ".0"
    sign = "-" if value < 0 else ""
    text = repr(float(magnitude))
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, fraction = mantissa.partition(".")
    if whole.strip("0"):
        exponent += len(whole.lstrip("0")) - 1
    else:
        exponent -= len(fraction) - len(fraction.lstrip("0")) + 1
    digits = (whole + fraction).lstrip("0").rstrip("0") or "0"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _double_cell(value: Any) -> str:
    # SQLite keeps whole numbers of NUMERIC columns as integers: the common, fast case.
    if type(value) is int and -10_000_000 < value < 10_000_000:
        return f"{value}.0"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    return java_double(float(value))


def _boolean_cell(value: Any) -> str:
    return "true" if value and value != "0" and value != "false" else "false"


def _int_cell(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


_DOUBLE_TYPES = frozenset(("double", "currency", "percent"))


def _text_column(values: Sequence[Any]) -> list[str]:
    try:
        return ["" if v is None else v.replace('"', '""') for v in values]
    except AttributeError:  # a value SQLite kept as a number in a text column
        return ["" if v is None else str(v).replace('"', '""') for v in values]


def _column_formatter(kind: str) -> Callable[[Sequence[Any]], list[str]]:
    """How one query column becomes CSV cell texts (quotes doubled, null empty)."""
    if kind == "boolean":
        return lambda values: ["" if v is None else _boolean_cell(v) for v in values]
    if kind in _DOUBLE_TYPES:
        return lambda values: ["" if v is None else _double_cell(v) for v in values]
    if kind in ("int", "long"):
        return lambda values: ["" if v is None else str(_int_cell(v)) for v in values]
    if kind == "base64":
        return lambda values: [
            "" if v is None else base64.b64encode(v).decode() for v in values
        ]
    return _text_column


def _csv_line(cells: Sequence[str]) -> str:
    return '"' + '","'.join(cells) + '"\n'


def csv_row_printer(field_types: Sequence[str]) -> Callable[[list[tuple[Any, ...]]], list[str]]:
    """A function that prints raw query rows as Bulk 1.0 CSV lines (every cell quoted, null
    empty), a chunk at a time and column by column (one comprehension per column), which is
    several times faster than handing each row to ``csv.writer``."""
    formatters = [_column_formatter(kind) for kind in field_types]

    def print_rows(chunk: list[tuple[Any, ...]]) -> list[str]:
        cells = [
            format_column(values)
            for format_column, values in zip(formatters, zip(*chunk, strict=True), strict=True)
        ]
        return [_csv_line(row) for row in zip(*cells, strict=True)]

    return print_rows


def spool_csv_rows(cursor: Iterable[tuple[Any, ...]], columns: Sequence[str],
                   field_types: Sequence[str], result: ResultFile) -> int:
    """Format query rows as Bulk CSV (every cell quoted, null empty) into ``result``.

    The Python formatter; processing uses :func:`spool_csv_query`, which has SQLite build the
    lines and falls back to this printer only for values SQLite cannot print exactly.
    """
    result.header = csv_header(columns)
    print_rows = csv_row_printer(field_types)
    iterator = iter(cursor)
    count = 0
    while True:
        chunk = list(itertools.islice(iterator, _QUERY_CHUNK_ROWS))
        if not chunk:
            break
        result.extend_text(print_rows(chunk))
        count += len(chunk)
    return count


def csv_header(columns: Sequence[str]) -> bytes:
    """The header line of a Bulk 1.0 CSV result file."""
    return _csv_line([name.replace('"', '""') for name in columns]).encode("utf-8")


def _epoch_millis(value: str) -> int:
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return round(stamp.timestamp() * 1000)


def _json_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "boolean":
        return bool(value) and value not in ("0", "false")
    if kind in _DOUBLE_TYPES:
        return float(value)
    if kind in ("int", "long"):
        return int(value)
    if kind == "datetime":
        return _epoch_millis(value)
    if kind == "base64":
        return base64.b64encode(value).decode()
    return value


class _RecordShape:
    """How the flat columns of a query nest into records with parents (``Account.Name``)."""

    def __init__(self, catalog: Any, object_name: str, api_version: str,
                 columns: Sequence[str], field_types: Sequence[str]) -> None:
        self.catalog = catalog
        self.object = object_name
        self.api_version = api_version
        self.columns = [c.split(".") for c in columns]
        self.types = list(field_types)

    def _url(self, type_name: str, record_id: Any) -> str | None:
        if not record_id:
            return None
        return f"/services/data/v{self.api_version}/sobjects/{type_name}/{record_id}"

    def _parent_type(self, owner: str, relationship: str, parent_id: Any) -> str:
        if parent_id and self.catalog is not None:
            prefix = str(parent_id)[:3]
            for name in self.catalog.names():
                obj = self.catalog.get(name)
                if obj is not None and obj.key_prefix == prefix:
                    return obj.name
        obj = self.catalog.get(owner) if self.catalog is not None else None
        if obj is not None:
            for definition in obj.fields.values():
                rel = definition.relationship_name
                if rel and rel.lower() == relationship.lower() and definition.reference_to:
                    return definition.reference_to[0]
        return relationship

    def record(self, row: Sequence[Any]) -> dict[str, Any]:
        """One query row as nested dicts in select order (``None`` for a missing parent)."""
        tree: dict[str, Any] = {}
        for path, kind, value in zip(self.columns, self.types, row, strict=True):
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = _json_value(kind, value)
        return self._finish(tree, self.object)

    def _finish(self, tree: dict[str, Any], type_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": type_name}}
        url = self._url(type_name, tree.get("Id"))
        if url:
            out["attributes"]["url"] = url
        for key, value in tree.items():
            if isinstance(value, dict):
                if all(v is None or v == {} for v in _leaves(value)):
                    out[key] = None
                else:
                    parent_id = value.get("Id") or tree.get(f"{key}Id")
                    out[key] = self._finish(value, self._parent_type(type_name, key, parent_id))
            else:
                out[key] = value
        return out


def _leaves(tree: dict[str, Any]) -> Iterator[Any]:
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value


def _pretty_json(value: Any, indent: str = "") -> str:
    """Jackson's default pretty printer, as Bulk 1.0 JSON results use: ``"key" : value``."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        inner = indent + "  "
        items = ",\n".join(
            f"{inner}{json.dumps(k, ensure_ascii=False)} : {_pretty_json(v, inner)}"
            for k, v in value.items()
        )
        return "{\n" + items + "\n" + indent + "}"
    return json.dumps(value, ensure_ascii=False)


def spool_json_rows(cursor: Iterable[Sequence[Any]], shape: _RecordShape,
                    result: ResultFile) -> int:
    """Query rows as the pretty JSON array Bulk 1.0 JSON jobs return."""
    count = 0
    iterator = iter(cursor)
    while True:
        chunk = list(itertools.islice(iterator, _QUERY_CHUNK_ROWS))
        if not chunk:
            break
        result.extend_text([_pretty_json(shape.record(row)) for row in chunk])
        count += len(chunk)
    return count


def _xml_record(record: dict[str, Any], tag: str, indent: str) -> str:
    attributes = record.get("attributes", {})
    type_name = escape(attributes.get("type", ""))
    parts = [f'{indent}<{tag} xsi:type="sObject">\n', f"{indent} <type>{type_name}</type>\n"]
    record_id = record.get("Id")
    parts.append(
        f"{indent} <Id>{escape(str(record_id))}</Id>\n"
        if record_id
        else f'{indent} <Id xsi:nil="true"/>\n'
    )
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            parts.append(_xml_record(value, key, indent + " "))
        elif value is None:
            parts.append(f'{indent} <{key} xsi:nil="true"/>\n')
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            parts.append(f"{indent} <{key}>{escape(text)}</{key}>\n")
    parts.append(f"{indent}</{tag}>\n")
    return "".join(parts)


def spool_xml_rows(cursor: Iterable[Sequence[Any]], shape: _RecordShape,
                   result: ResultFile) -> int:
    """Query rows as ``<queryResult><records xsi:type="sObject">…``."""
    xml_shape = _RecordShape(shape.catalog, shape.object, shape.api_version,
                             [".".join(c) for c in shape.columns],
                             ["string" if t == "datetime" else t for t in shape.types])
    count = 0
    iterator = iter(cursor)
    while True:
        chunk = list(itertools.islice(iterator, _QUERY_CHUNK_ROWS))
        if not chunk:
            break
        result.extend_text([_xml_record(xml_shape.record(row), "records", " ") for row in chunk])
        count += len(chunk)
    return count


# --------------------------------------------------------------------------------------------
# SOQL rewriting for PK chunks

_SOQL_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|\(|\)|[A-Za-z_][A-Za-z0-9_.]*|\s+|.", re.S)
_CLAUSES_AFTER_WHERE = ("GROUP", "ORDER", "LIMIT", "OFFSET", "FOR", "WITH", "UPDATE")


def _top_level_words(soql: str) -> list[tuple[str, int, int]]:
    """Words outside strings and parentheses: (UPPER word, start, end)."""
    words = []
    depth = 0
    for m in _SOQL_TOKEN.finditer(soql):
        text = m.group(0)
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and (text[0].isalpha() or text[0] == "_"):
            words.append((text.upper(), m.start(), m.end()))
    return words


def chunk_query(soql: str, field_name: str, lo: str, hi: str | None, *,
                nulls: bool = False) -> str:
    """Add ``field >= lo AND field < hi`` to a SOQL query's WHERE clause (``nulls``: or the
    field is empty)."""
    condition = f"{field_name} >= '{lo}'" + (f" AND {field_name} < '{hi}'" if hi else "")
    if nulls:
        condition = f"(({condition}) OR {field_name} = null)"
    words = _top_level_words(soql)
    where = next((w for w in words if w[0] == "WHERE"), None)
    tail = next(
        (w for w in words if w[0] in _CLAUSES_AFTER_WHERE and (where is None or w[1] > where[1])),
        None,
    )
    end = tail[1] if tail else len(soql)
    if where is not None:
        original = soql[where[2]:end].strip()
        return f"{soql[:where[1]]}WHERE {condition} AND ({original}) {soql[end:]}".strip()
    return f"{soql[:end].rstrip()} WHERE {condition} {soql[end:]}".strip()


def chunking_defeated(soql: str) -> bool:
    """ORDER BY, or a filter on a field with "id" in its name, effectively disables PK chunking."""
    words = _top_level_words(soql)
    if any(w == "ORDER" for w, _, _ in words):
        return True
    where = next((w for w in words if w[0] == "WHERE"), None)
    if where is None:
        return False
    tail = next((w for w in words if w[0] in _CLAUSES_AFTER_WHERE and w[1] > where[1]), None)
    clause = soql[where[2]: tail[1] if tail else len(soql)]
    clause = re.sub(r"'(?:[^'\\]|\\.)*'", "''", clause)
    return any("id" in name.lower() for name in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", clause)
               if name.upper() not in ("AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "EXCLUDES",
                                        "NULL", "TRUE", "FALSE"))


# --------------------------------------------------------------------------------------------
# Processing (runs in the worker pool)


def _result_rows_per_file(state: Any) -> int:
    return int(getattr(state.settings, "result_rows_per_file", DEFAULT_RESULT_ROWS_PER_FILE))


def _finish_batch(job: Bulk1Job, batch: Bulk1Batch, started: datetime, state: str,
                  message: str | None = None) -> None:
    ended = now()
    with job.lock:
        batch.state = state
        batch.state_message = message
        batch.modstamp = ended
        batch.total_ms = elapsed_ms(started, ended)
        batch.api_ms = batch.total_ms


def _claim(job: Bulk1Job, batch: Bulk1Batch) -> datetime | None:
    """Move a Queued batch to InProgress; None if it is no longer Queued (aborted)."""
    with job.lock:
        if batch.state != "Queued":
            return None
        started = now()
        batch.state = "InProgress"
        batch.modstamp = started
        return started


def _apply_faults(state: Any, engine: JobEngine) -> str | None:
    """Wait out the processing delay; the forced failure message if a fault says so.

    A ``never_finish`` fault keeps the batch InProgress until the pool shuts down.
    """
    faults = state.faults
    delay = faults.processing_delay_seconds
    if delay > 0 and not engine.pool.sleep(delay):
        return "InternalServerError : The server is shutting down"
    if faults.never_finish:
        while engine.pool.sleep(3600):
            pass
        return "InternalServerError : The server is shutting down"
    return faults.take_batch_failure()


def process_batch(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch) -> None:
    """Worker task: process one batch, recording its outcome on the batch."""
    started = _claim(job, batch)
    if started is None:
        return
    try:
        if job.is_query:
            _process_query(state, engine, job, batch, started)
        else:
            _process_ingest(state, engine, job, batch, started)
    except BatchFailure as exc:
        _finish_batch(job, batch, started, "Failed", str(exc))
    except Exception as exc:
        logger.exception("batch %s of job %s failed unexpectedly", batch.id, job.id)
        _finish_batch(job, batch, started, "Failed", f"InternalServerError : {exc}")


def _process_ingest(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch,
                    started: datetime) -> None:
    from sfbulk.emulator.store import BatchError

    org = state.org
    obj = org.catalog.get(job.object)
    if job.content_type.startswith("ZIP_"):
        parsed = parse_zip_batch(batch.request, job.data_format, obj)
    else:
        parsed = _PARSERS[job.data_format](batch.request)
    table = parsed.table
    if table is not None and (job.serial or not _writes_parents(obj, parsed.columns)):
        # Full CSV records writing no parent: nothing to lock, so the records go to the
        # store as they are, without a dict per row.
        _ingest_table(state, engine, job, batch, started, parsed.columns, table)
        return
    rows = parsed.rows
    parents = parent_keys(obj, rows) if not job.serial else [frozenset()] * len(rows)
    batch_parents = frozenset().union(*parents) if parents else frozenset()
    with job.lock:
        batch.parents = batch_parents
    # Contention is what other batches hold when this one starts or when it writes.
    contended = job.active_parents.acquire(batch_parents)
    try:
        forced = _apply_faults(state, engine)
        if forced is not None:
            raise BatchFailure(forced)
        contended |= job.active_parents.shared(batch_parents)
        outcomes: list[Any] = [None] * len(rows)
        to_write: list[dict[str, Any]] = []
        positions: list[int] = []
        checked: list[Any] = rows
        if not contended and set(map(type, rows)) == {dict}:
            # Every row parsed and none can meet a lock error: all of them are written.
            to_write = rows  # type: ignore[assignment]  # every row a dict, checked
            positions = list(range(len(rows)))
            checked = []
        for index, row in enumerate(checked):
            if not isinstance(row, dict):
                code, message, fields = row
                outcomes[index] = _Outcome(None, False, False, [_Error(code, message, fields)])
                continue
            locked = lock_error(parents[index], contended, state.faults.roll_lock_error)
            if locked is not None:
                outcomes[index] = _Outcome(None, False, False, [_Error(*locked, ())])
                continue
            to_write.append(row)
            positions.append(index)
        if to_write:
            try:
                written = org.write(
                    job.object, job.operation, to_write, external_id_field=job.external_id_field
                )
            except BatchError as exc:
                message = str(getattr(exc, "message", None) or exc)
                if not message.startswith("InvalidBatch"):
                    message = f"InvalidBatch : {message}"
                raise BatchFailure(message) from None
            if len(written) == len(outcomes):
                outcomes = list(written)
            else:
                for index, outcome in zip(positions, written, strict=True):
                    outcomes[index] = outcome
        results = encode_ingest_results(outcomes, job.data_format)
        with job.lock:
            batch.results = results
            batch.records_processed = len(outcomes)
            batch.records_failed = len(outcomes) - sum(map(_SUCCESS, outcomes))
        _finish_batch(job, batch, started, "Completed")
    finally:
        job.active_parents.release(batch_parents)


def _writes_parents(obj: Any, columns: Sequence[str]) -> bool:
    """Whether any of these columns names a parent (a reference field or ``Rel.Field``)."""
    for name in columns:
        definition = obj.field(name) if obj is not None and "." not in name else None
        if "." in name or (definition is not None and definition.type == "reference"):
            return True
    return False


def _ingest_table(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch,
                  started: datetime, header: list[str], table: list[list[str]]) -> None:
    """:func:`_process_ingest` for full CSV records that write no parent (no lock errors)."""
    from sfbulk.emulator.store import BatchError

    forced = _apply_faults(state, engine)
    if forced is not None:
        raise BatchFailure(forced)
    try:
        outcomes = state.org.write_rows(
            job.object, job.operation, header, table, external_id_field=job.external_id_field
        )
    except BatchError as exc:
        message = str(getattr(exc, "message", None) or exc)
        if not message.startswith("InvalidBatch"):
            message = f"InvalidBatch : {message}"
        raise BatchFailure(message) from None
    results = encode_ingest_results(outcomes, job.data_format)
    with job.lock:
        batch.results = results
        batch.records_processed = len(outcomes)
        batch.records_failed = len(outcomes) - sum(map(_SUCCESS, outcomes))
    _finish_batch(job, batch, started, "Completed")


def _soql_text(batch: Bulk1Batch) -> str:
    try:
        return batch.request.decode("utf-8").removeprefix("\ufeff").strip()
    except UnicodeDecodeError:
        raise BatchFailure("InvalidBatch : The query is not valid UTF-8") from None


def _chunk_field(org: Any, job: Bulk1Job) -> tuple[str, str]:
    """The object whose ids are chunked and the field of the queried object that holds them."""
    parent = job.pk_chunking.parent if job.pk_chunking else None
    if not parent:
        return job.object, "Id"
    obj = org.catalog.get(job.object)
    parent_obj = org.catalog.get(parent)
    if obj is None or parent_obj is None:
        raise BatchFailure(f"InvalidBatch : Invalid parent object for PK chunking: {parent}")
    for definition in obj.fields.values():
        if definition.type == "reference" and any(
            target.lower() == parent_obj.name.lower() for target in definition.reference_to
        ):
            return parent_obj.name, definition.name
    raise BatchFailure(
        f"InvalidBatch : {job.object} has no reference to {parent_obj.name} to chunk by"
    )


def _split_into_chunks(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch,
                       started: datetime, soql: str) -> bool:
    """PK chunking: replace the original batch by one batch per Id range. False if chunking
    does not apply to this query (processed as a plain query then)."""
    from sfbulk.emulator.app import DAILY_BULK_API_BATCHES, LimitExceeded

    if chunking_defeated(soql):
        return False
    org = state.org
    chunked_object, chunk_field = _chunk_field(org, job)
    target = org.catalog.get(chunked_object)
    if target is None or not getattr(target, "pk_chunking", False):
        raise BatchFailure(
            f"InvalidBatch : PK chunking is not supported for entity: {chunked_object}"
        )
    assert job.pk_chunking is not None
    ranges = org.id_chunks(chunked_object, job.pk_chunking.chunk_size, job.pk_chunking.start_row)
    by_parent = chunk_field != "Id"
    if by_parent and not ranges:  # no parents at all: one chunk still reads the orphans
        ranges = [("", None)]
    created = now()
    chunks: list[Bulk1Batch] = []
    for number, (lo, hi) in enumerate(ranges):
        try:
            state.usage.consume(DAILY_BULK_API_BATCHES)
        except LimitExceeded:
            raise BatchFailure("ExceededQuota : ApiBatchItems Limit exceeded.") from None
        chunks.append(Bulk1Batch(
            id=engine.new_batch_id(), job_id=job.id, created=created,
            request=batch.request, chunk=(lo, hi), chunk_field=chunk_field,
            chunk_nulls=by_parent and number == 0,
        ))
    with job.lock:
        aborted = job.state == "Aborted"
        for chunk in chunks:
            if aborted:
                chunk.state = "NotProcessed"
            job.batches.append(chunk)
    _finish_batch(job, batch, started, "NotProcessed")
    if not aborted:
        for chunk in chunks:
            engine.pool.submit(
                job.id, functools.partial(process_batch, state, engine, job, chunk),
                serial=job.serial,
            )
    return True


def _process_query(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch,
                   started: datetime) -> None:
    from sfbulk.emulator.soql import SoqlError, compile_soql

    soql = _soql_text(batch)
    forced = _apply_faults(state, engine)
    if forced is not None:
        raise BatchFailure(forced)
    if job.pk_chunking is not None and batch.chunk is None and (
        _split_into_chunks(state, engine, job, batch, started, soql)
    ):
        return
    if batch.chunk is not None:
        soql = chunk_query(soql, batch.chunk_field, *batch.chunk, nulls=batch.chunk_nulls)
    org = state.org
    fmt = job.data_format
    if fmt == "CSV":
        try:
            compiled = compile_soql(
                soql, org.catalog, job.operation == "queryAll",
                expected_object=job.object, now=org.clock(),
            )
        except SoqlError as exc:
            raise BatchFailure(
                f"InvalidBatch : Failed to process query: {exc.code}: {exc.message}"
            ) from None
        results = engine.result_file(csv_header(compiled.columns))
        count = sum(spool_csv_query(org, compiled, results,
                                    csv_row_printer(compiled.field_types)))
        results.finish()
        _complete_query(state, engine, job, batch, started, results, count)
        return
    try:
        cursor = org.query(
            soql, include_deleted=job.operation == "queryAll", expected_object=job.object
        )
    except SoqlError as exc:
        raise BatchFailure(
            f"InvalidBatch : Failed to process query: {exc.code}: {exc.message}"
        ) from None
    shape = _RecordShape(org.catalog, cursor.object, job.api_version, cursor.columns,
                         cursor.field_types)
    if fmt == "JSON":
        results = engine.result_file(b"[ ", footer=b" ]", separator=b", ")
        count = spool_json_rows(cursor, shape, results)
    else:
        results = engine.result_file(
            f'{XML_DECLARATION}\n<queryResult xmlns="{NS}"\n    xmlns:xsi="{XSI}">\n'
            .encode(),
            footer=b"</queryResult>",
        )
        count = spool_xml_rows(cursor, shape, results)
    results.finish()
    _complete_query(state, engine, job, batch, started, results, count)


def _complete_query(state: Any, engine: JobEngine, job: Bulk1Job, batch: Bulk1Batch,
                    started: datetime, results: ResultFile, count: int) -> None:
    """Split a finished result into result files and mark the batch Completed."""
    per_file = max(1, _result_rows_per_file(state))
    pages: dict[str, tuple[int, int]] = {}
    for start in range(0, max(count, 1), per_file):
        pages[engine.new_result_id()] = (start, min(per_file, count - start) if count else 0)
    with job.lock:
        batch.results = results
        batch.result_pages = pages
        batch.records_processed = count
    _finish_batch(job, batch, started, "Completed")


# --------------------------------------------------------------------------------------------
# Handlers


def _methods(request: Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise Bulk1Error(
            "InvalidUrl",
            f"HTTP method '{request.method}' is not supported by this resource",
            status=405,
        )


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Run ``handler`` and answer a :class:`Bulk1Error` in the negotiated format: the job's
    format once a handler has found the job and answers in it, else the request's format."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Bulk1Error as exc:
            as_json = request.scope.get("sfbulk.bulk1_json")
            if as_json is None:
                as_json = _request_wants_json(request)
            return _error_response(request, exc, as_json)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _prelude(request: Request) -> str:
    version = _check_version(request)
    _check_session(request)
    return version


async def create_job(request: Request) -> Response:
    """``POST /job``: answer 201 with the jobInfo in the request's format."""
    _methods(request, "POST")
    version = await _prelude(request)
    state = _state(request)
    as_json = _request_wants_json(request)
    body = await _read_body(request, 1_000_000)
    values = _parse_job_body(body, as_json)
    operation = values.get("operation")
    if not operation:
        raise Bulk1Error("InvalidJob", "Unable to parse Job: operation is required")
    if operation not in OPERATIONS:
        raise Bulk1Error("InvalidJob", f"Invalid value for operation: {operation}")
    object_name = values.get("object")
    if not object_name:
        raise Bulk1Error("InvalidJob", "Unable to parse Job: object is required")
    obj = state.org.catalog.get(object_name)
    if obj is None:
        raise Bulk1Error("InvalidJob", f"Unable to find object: {object_name}")
    if operation in QUERY_OPERATIONS and not (
        getattr(obj, "queryable", True) and getattr(obj, "bulk_queryable", True)
    ):
        raise Bulk1Error("InvalidEntity", f"Entity '{obj.name}' is not supported by the Bulk API.")
    if not obj.bulk_api:
        # "Allow Bulk API Access" off (metadata enableBulkApi=false): Salesforce refuses every
        # Bulk job on the object, ingest as well as query, when the job is created.
        raise Bulk1Error("InvalidEntity", f"Entity '{obj.name}' is not supported by the Bulk API.")
    if values.get("state") not in (None, "", "Open"):
        raise Bulk1Error("InvalidJob", "A new job can only be created in state Open")
    content_type = values.get("contentType") or "XML"
    if content_type not in CONTENT_TYPES:
        raise Bulk1Error("InvalidJob", f"Invalid value for contentType: {content_type}")
    if operation in QUERY_OPERATIONS and content_type.startswith("ZIP_"):
        raise Bulk1Error("InvalidJob", f"contentType {content_type} is not supported for query")
    mode = values.get("concurrencyMode") or "Parallel"
    if mode not in CONCURRENCY_MODES:
        raise Bulk1Error("InvalidJob", f"Invalid value for concurrencyMode: {mode}")
    external_id = values.get("externalIdFieldName") or None
    if operation == "upsert":
        if not external_id:
            raise Bulk1Error("InvalidJob", "External ID field is required for upsert operation")
        definition = obj.field(external_id)
        if definition is None or not (
            definition.name == "Id" or definition.external_id or definition.id_lookup
        ):
            raise Bulk1Error(
                "InvalidJob",
                f"Field name provided, {external_id} is not an External ID or indexed field "
                f"for {obj.name}",
            )
        external_id = definition.name
    elif external_id:
        raise Bulk1Error(
            "InvalidJob", f"externalIdFieldName is only allowed for upsert, not {operation}"
        )
    pk = parse_pk_chunking(request.headers.get("sforce-enable-pkchunking"))
    engine = _engine(request)
    job = Bulk1Job(
        id=engine.new_job_id(),
        operation=operation,
        object=obj.name,
        created_by=state.org.user_id,
        created=now(),
        api_version=version,
        content_type=content_type,
        concurrency_mode=CONCURRENCY_MODES[mode],
        external_id_field=external_id if operation == "upsert" else None,
        assignment_rule_id=values.get("assignmentRuleId") or None,
        pk_chunking=pk if operation in QUERY_OPERATIONS else None,
        disable_retry=request.headers.get("sforce-disable-batch-retry", "").lower() == "true",
    )
    engine.add(job.id, job)
    logger.info("Bulk 1.0 job %s created: %s %s (%s)", job.id, operation, obj.name, content_type)
    return _response(
        request,
        render_job(job, as_json, _pretty(request)),
        JSON_TYPE if as_json else XML_TYPE,
        201,
        {"location": f"/services/async/{version}/job/{job.id}"},
    )


async def job_resource(request: Request) -> Response:
    """``GET /job/{id}`` (job's format) and ``POST /job/{id}`` (close/abort, request's format)."""
    _methods(request, "GET", "POST")
    await _prelude(request)
    job = _job_or_error(request, job_format=request.method == "GET")
    if request.method == "GET":
        return _response(request, render_job(job, job.wants_json, _pretty(request)),
                         JSON_TYPE if job.wants_json else XML_TYPE)
    as_json = _request_wants_json(request)
    values = _parse_job_body(await _read_body(request, 1_000_000), as_json)
    if set(values) != {"state"}:
        raise Bulk1Error("InvalidJob", "Only the state of an existing job can be changed")
    target = values["state"]
    engine = _engine(request)
    with job.lock:
        if target == "Closed":
            if job.state != "Open":
                raise Bulk1Error("InvalidJobState", f"Job {job.id} is {job.state}, not Open")
            job.state = "Closed"
        elif target == "Aborted":
            if job.state not in ("Open", "Closed"):
                raise Bulk1Error("InvalidJobState", f"Job {job.id} is already {job.state}")
            job.state = "Aborted"
            stamp = now()
            for batch in job.batches:
                if batch.state == "Queued":
                    batch.state = "NotProcessed"
                    batch.modstamp = stamp
        else:
            raise Bulk1Error("InvalidJobState", f"Invalid state for job {job.id}: {target}")
        job.modstamp = now()
    if target == "Aborted":
        engine.pool.cancel(job.id)
    logger.info("Bulk 1.0 job %s %s", job.id, target.lower())
    return _response(request, render_job(job, as_json, _pretty(request)),
                     JSON_TYPE if as_json else XML_TYPE)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


async def batches_resource(request: Request) -> Response:
    """``POST /job/{id}/batch`` (add a batch, 201) and ``GET /job/{id}/batch`` (batchInfoList)."""
    _methods(request, "GET", "POST")
    version = await _prelude(request)
    job = _job_or_error(request)
    if request.method == "GET":
        with job.lock:
            batches = list(job.batches)
        return _response(request, render_batch_list(batches, job.wants_json, _pretty(request)),
                         JSON_TYPE if job.wants_json else XML_TYPE)
    from sfbulk.emulator.app import DAILY_BULK_API_BATCHES, LimitExceeded

    state = _state(request)
    if version != job.api_version:
        raise Bulk1Error(
            "InvalidVersion",
            f"The API version {version} of the request does not match the job's "
            f"version {job.api_version}",
        )
    expected = CONTENT_TYPES[job.content_type]
    sent = _media_type(request.headers.get("content-type", ""))
    if sent != expected:
        raise Bulk1Error(
            "InvalidBatch",
            f"Unsupported content type {sent or '(none)'}: job {job.id} expects {expected}",
        )
    body = await _read_body(request)
    if not body.strip():
        raise Bulk1Error("InvalidBatch", "Records not processed: the batch is empty")
    try:
        state.usage.consume(DAILY_BULK_API_BATCHES)
    except LimitExceeded:
        raise Bulk1Error("ExceededQuota", "ApiBatchItems Limit exceeded.") from None
    engine = _engine(request)
    with job.lock:
        if job.state != "Open":
            raise Bulk1Error(
                "InvalidJobState", f"Job {job.id} is {job.state}: no batches can be added"
            )
        batch = Bulk1Batch(id=engine.new_batch_id(), job_id=job.id, created=now(), request=body)
        job.batches.append(batch)
        job.modstamp = batch.created
    rendered = render_batch(batch, job.wants_json, _pretty(request))
    engine.pool.submit(
        job.id, lambda: process_batch(state, engine, job, batch), serial=job.serial
    )
    return _response(
        request,
        rendered,
        JSON_TYPE if job.wants_json else XML_TYPE,
        201,
        {"location": f"/services/async/{version}/job/{job.id}/batch/{batch.id}"},
    )


def _batch_or_error(request: Request, job: Bulk1Job) -> Bulk1Batch:
    batch = job.batch(request.path_params["batch_id"])
    if batch is None:
        raise Bulk1Error("InvalidBatch", f"Invalid batch id: {request.path_params['batch_id']}")
    return batch


async def batch_resource(request: Request) -> Response:
    """``GET /job/{id}/batch/{batch}``: batchInfo in the job's format."""
    _methods(request, "GET")
    await _prelude(request)
    job = _job_or_error(request)
    batch = _batch_or_error(request, job)
    with job.lock:
        body = render_batch(batch, job.wants_json, _pretty(request))
    return _response(request, body, JSON_TYPE if job.wants_json else XML_TYPE)


async def batch_request(request: Request) -> Response:
    """``GET …/batch/{batch}/request``: the payload as it was sent."""
    _methods(request, "GET")
    await _prelude(request)
    job = _job_or_error(request)
    batch = _batch_or_error(request, job)
    return _response(request, batch.request, CONTENT_TYPES[job.content_type])


async def batch_result(request: Request) -> Response:
    """``GET …/batch/{batch}/result``: ingest results, or a query batch's result ids."""
    _methods(request, "GET")
    await _prelude(request)
    job = _job_or_error(request)
    batch = _batch_or_error(request, job)
    with job.lock:
        state = batch.state
        results = batch.results
        pages = list(batch.result_pages)
    if state != "Completed" or results is None:
        if state == "Failed":
            raise Bulk1Error("InvalidBatch", f"Batch {batch.id} failed: {batch.state_message}")
        raise Bulk1Error("InvalidBatch", "Batch not completed")
    if job.is_query:
        if job.wants_json:
            return _response(request, json.dumps(pages).encode(), JSON_TYPE)
        items = "".join(f"<result>{rid}</result>\n" for rid in pages)
        body = f'{XML_DECLARATION}\n<result-list xmlns="{NS}">\n{items}</result-list>'
        return _response(request, body.encode(), XML_TYPE)
    content_type = {"CSV": CSV_TYPE, "JSON": JSON_TYPE, "XML": XML_TYPE}[job.data_format]
    return _streaming(request, results.iter_page(), content_type)


async def query_result(request: Request) -> Response:
    """``GET …/batch/{batch}/result/{752…}``: one result file, streamed."""
    _methods(request, "GET")
    await _prelude(request)
    job = _job_or_error(request)
    batch = _batch_or_error(request, job)
    result_id = request.path_params["result_id"]
    with job.lock:
        page = batch.result_pages.get(result_id)
        results = batch.results
    if not job.is_query or page is None or results is None:
        raise Bulk1Error("InvalidBatch", f"Invalid result id: {result_id}")
    start, count = page
    fmt = job.data_format
    content_type = {"CSV": QUERY_CSV_TYPE, "JSON": JSON_TYPE, "XML": XML_TYPE}[fmt]
    if count == 0:
        empty = {"CSV": NO_RECORDS, "JSON": b"[ ]"}.get(fmt)
        if empty is None:
            empty = results.header + results.footer
        return _response(request, empty, content_type)
    return _streaming(
        request, results.iter_page(start, count, chunk_bytes=_STREAM_CHUNK_BYTES), content_type,
        results.page_bytes(start, count),
    )


async def unknown_resource(request: Request) -> Response:
    """Anything else under ``/services/async/``."""
    raise Bulk1Error("InvalidUrl", f"Unknown Bulk API resource: {request.url.path}")


def routes() -> list[BaseRoute]:
    """The Bulk 1.0 routes (every method reaches the handlers, which answer 405 themselves)."""
    base = "/services/async/{version}"
    table: list[tuple[str, Callable[[Request], Any]]] = [
        ("/job", create_job),
        ("/job/{job_id}", job_resource),
        ("/job/{job_id}/batch", batches_resource),
        ("/job/{job_id}/batch/{batch_id}", batch_resource),
        ("/job/{job_id}/batch/{batch_id}/request", batch_request),
        ("/job/{job_id}/batch/{batch_id}/result", batch_result),
        ("/job/{job_id}/batch/{batch_id}/result/{result_id}", query_result),
        ("/{rest:path}", unknown_resource),
    ]
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [Route(base + path, _guard(handler), methods=methods) for path, handler in table]
