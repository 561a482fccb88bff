"""Bulk API 2.0 of the emulator: ingest and query jobs under ``/services/data/vXX.X/jobs/``.

The wire shapes follow ``SALESFORCE-API.md`` §3 and the recorded bodies in
``fixtures/salesforce/bulk2/``: job JSON is pretty-printed the way Salesforce answers
``X-PrettyPrint`` requests (``"key" : value``, two-space indent) with a field set and order
that differ per endpoint; errors are JSON arrays of ``{"errorCode", "message"}``; results are
CSV in the job's column delimiter and line ending.

Choices where Salesforce's behaviour is not evidenced (marked [UNV] in the reference):

- ``POST /jobs/ingest`` answers 200, like ``POST /jobs/query``.
- Ingest results keep the upload's row order (Salesforce does not promise any order).
- ``successfulResults`` echoes *converted* values like the documentation's sample: booleans as
  ``true``/``false``, dates as ``yyyy-MM-dd``, dateTimes in UTC ``yyyy-MM-ddTHH:mm:ss.SSSZ`` and
  double/currency/percent fields in Java ``Double.toString`` notation (``912260031`` comes back as
  ``9.12260031E8``). ``#N/A`` and relationship columns are echoed as uploaded.
  ``failedResults`` and ``unprocessedrecords`` echo the raw uploaded values.
- A query with zero rows returns an empty body (no header row), ``Sforce-NumberOfRecords: 0``.
- Per-field (131,072 characters) and per-record (400,000 characters) limits fail the row with
  ``LIMIT_EXCEEDED``; a header over 32,000 characters or 5,000 fields fails the job.
- Results of a job that is not finished yet are refused with 400 ``INVALIDJOBSTATE``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import operator
import os
import re
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any, BinaryIO

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from sfbulk.emulator.ingest import (
    BadRow,
    ParentLocks,
    Utf8Error,
    bad_row_error,
    check_utf8,
    decode_blocks,
    error_cell,
    format_error_cell,
    iter_csv_blocks,
    lock_error,
    parent_keys,
)
from sfbulk.emulator.jobs import (
    PreparedQuery,
    ResultFile,
    format_json_datetime,
    now,
    spool_csv_query,
)
from sfbulk.emulator.sessions import request_session
from sfbulk.ids import make_id

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
CSV_CONTENT_TYPE = "text/csv; charset=UTF-8"

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}

#: Rows per internal sub-batch: Salesforce splits a 2.0 upload into batches of 10,000 records.
SUB_BATCH_ROWS = 10_000
#: Bytes of a spooled upload read at a time while its records are parsed.
UPLOAD_BLOCK_BYTES = 1 << 20
#: 150 MB of base64-encoded data per job ("data is converted to base64 when received").
MAX_UPLOAD_BASE64_BYTES = 150 * 1024 * 1024
#: A multipart create may carry at most 100,000 characters of CSV.
MAX_MULTIPART_CHARACTERS = 100_000
MAX_HEADER_CHARACTERS = 32_000
MAX_FIELDS_PER_RECORD = 5_000
MAX_FIELD_CHARACTERS = 131_072
MAX_RECORD_CHARACTERS = 400_000
#: Jobs per page of ``GET /jobs/ingest`` and ``GET /jobs/query``.
LIST_PAGE_SIZE = 1_000
#: Rows per results page when the client sends no ``maxRecords`` and the settings name none.
DEFAULT_QUERY_PAGE_SIZE = 100_000
#: ``/limits`` names of the daily allocations Bulk 2.0 consumes (see ``app.Usage``).
DAILY_BULK_API_BATCHES = "DailyBulkApiBatches"
DAILY_BULK_V2_QUERY_JOBS = "DailyBulkV2QueryJobs"
#: Result URLs per ``resultPages`` response (the documented maximum).
RESULT_PAGES_PER_RESPONSE = 5
MIN_INGEST_VERSION = 41.0
MIN_QUERY_VERSION = 47.0
MIN_RESULT_PAGES_VERSION = 58.0

TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")

_VERSION_RE = re.compile(r"^\d{2,3}\.\d$")
_STREAM_CHUNK = 256 * 1024


# --------------------------------------------------------------------------------------------
# Wire helpers


def dumps_pretty(value: Any) -> str:
    """Serialise like Salesforce's pretty printer: ``"key" : value`` with a two-space indent."""
    return json.dumps(value, indent=2, separators=(",", " : "), ensure_ascii=False)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A pretty-printed JSON response with Salesforce's content type."""
    return Response(
        dumps_pretty(value).encode("utf-8"),
        status_code=status,
        media_type=JSON_CONTENT_TYPE,
        headers=headers,
    )


def error_response(status: int, code: str, message: str) -> Response:
    """The Bulk 2.0 error body: an array holding one ``{"errorCode", "message"}`` object."""
    return json_response([{"errorCode": code, "message": message}], status)


def invalid_session_response() -> Response:
    """401 for a missing, unknown or expired token, shaped like the recorded REST body."""
    return json_response(
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401
    )


def not_found_response() -> Response:
    """404 for an unknown or deleted job, with the documented body."""
    return error_response(404, "NOT_FOUND", "The requested resource does not exist")


def encode_locator(row: int) -> str:
    """Opaque page locator: the base64 of the first row's index, without padding.

    Salesforce's locators look the same (``MTAwMDA`` is ``10000``); clients treat them as opaque.
    """
    return base64.b64encode(str(row).encode("ascii")).decode("ascii").rstrip("=")


def decode_locator(locator: str) -> int | None:
    """The row index a locator points at, or None when it is not one of ours."""
    text = locator.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        row = int(raw.decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return row if row >= 0 else None


def java_double(value: float) -> str:
    """Render a float the way Java's ``Double.toString`` does (shortest round-trip digits).

    Plain notation with at least one fractional digit for 1e-3 <= |x| < 1e7, otherwise
    computerized scientific notation such as ``9.12260031E8``. Python's ``repr`` already has the
    shortest digits and is plain in that range, so only the notation is rewritten (this runs
    once per currency cell of a query, so it avoids Decimal).
    """
    text = repr(value)
    if text in ("nan", "inf", "-inf"):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[text]
    magnitude = -value if value < 0 else value
    if magnitude == 0 or 1e-3 <= magnitude < 1e7:
        return text  # e.g. "2676.0", "0.5", "-0.0"
    sign = "-" if text[0] == "-" else ""
    if sign:
        text = text[1:]
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{sign}{mantissa}E{int(exponent)}"
    whole, _, fraction = text.partition(".")
    if whole != "0":  # >= 1e7, written out in full by repr
        digits = (whole + fraction).rstrip("0") or "0"
        exponent_value = len(whole) - 1
    else:  # 1e-4 <= x < 1e-3: "0.000ddd"
        significant = fraction.lstrip("0")
        exponent_value = -(len(fraction) - len(significant) + 1)
        digits = significant.rstrip("0")
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent_value}"


def _echo_boolean(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return "true"
    if lowered in ("false", "0", "no", "n"):
        return "false"
    return value


def _echo_int(value: str) -> str:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return value
    return str(int(number)) if number == number.to_integral_value() else value


def _echo_double(value: str) -> str:
    try:
        return java_double(float(value.strip()))
    except ValueError:
        return value


def _echo_date(value: str) -> str:
    text = value.strip()
    if len(text) >= 10 and text[4] == "-" and text[7] == "-":
        return text[:10]
    return value


def _echo_datetime(value: str) -> str:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_ECHO_BY_TYPE: dict[str, Callable[[str], str]] = {
    "boolean": _echo_boolean,
    "int": _echo_int,
    "long": _echo_int,
    "double": _echo_double,
    "currency": _echo_double,
    "percent": _echo_double,
    "date": _echo_date,
    "datetime": _echo_datetime,
}


def echo_converter(field_type: str | None) -> Callable[[str], str] | None:
    """How ``successfulResults`` echoes a value of this describe type (None: as uploaded)."""
    if field_type is None:
        return None
    return _ECHO_BY_TYPE.get(field_type)


def quote_cell(value: str) -> str:
    """Quote a CSV cell the Salesforce way: always quoted, inner quotes doubled."""
    return '"' + value.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# Jobs


@dataclass
class Bulk2Job:
    """One Bulk 2.0 job (ingest or query) and everything the emulator keeps for it.

    Mutable fields are changed under ``lock`` by request handlers and the background worker.
    """

    id: str
    kind: str  # "ingest" or "query"
    operation: str
    object: str
    created_by_id: str
    api_version: str
    line_ending: str = "LF"
    column_delimiter: str = "COMMA"
    content_type: str = "CSV"
    external_id_field: str | None = None
    assignment_rule_id: str | None = None
    query: str | None = None
    pk_chunking_supported: bool = False
    state: str = "Open"
    created: datetime = field(default_factory=now)
    modstamp: datetime = field(default_factory=now)
    processed: int = 0
    failed: int = 0
    retries: int = 0
    total_processing_ms: int = 0
    api_active_ms: int = 0
    apex_ms: int = 0
    error_message: str | None = None
    upload_count: int = 0
    upload_bytes: int = 0
    #: The uploaded CSV, spooled to an unnamed temporary file (ingest jobs).
    upload: BinaryIO | None = field(default=None, repr=False)
    #: ``successfulResults``/``failedResults``/``unprocessedrecords`` (ingest) or ``results``
    #: (query), created when processing starts.
    results: dict[str, ResultFile] = field(default_factory=dict, repr=False)
    #: The compiled query's open cursor until the worker has read it (query jobs).
    cursor: Any = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    abort_event: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    deleted: bool = False

    @property
    def delimiter(self) -> str:
        return DELIMITERS[self.column_delimiter]

    @property
    def newline(self) -> str:
        return LINE_ENDINGS[self.line_ending]

    def close_cursor(self) -> None:
        """Release the query's SQLite statement (done, aborted or deleted)."""
        with self.lock:
            cursor, self.cursor = self.cursor, None
        if cursor is not None:
            cursor.close()

    def discard_results(self) -> None:
        """Release the upload spool and every result file (job deleted or emulator stopped)."""
        with self.lock:
            self.close_cursor()
            if self.upload is not None:
                self.upload.close()
                self.upload = None
            for result in self.results.values():
                result.discard()
            self.results = {}

    def touch(self) -> None:
        self.modstamp = now()

    def set_state(self, state: str) -> None:
        self.state = state
        self.touch()

    # -- JSON bodies (field sets and order per SALESFORCE-API.md §3.3 / §3.7) -----------------

    def _head(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by_id,
            "createdDate": format_json_datetime(self.created),
            "systemModstamp": format_json_datetime(self.modstamp),
            "state": self.state,
        }
        if self.external_id_field is not None:
            body["externalIdFieldName"] = self.external_id_field
        if self.assignment_rule_id is not None:
            body["assignmentRuleId"] = self.assignment_rule_id
        body["concurrencyMode"] = "Parallel"
        body["contentType"] = self.content_type
        body["apiVersion"] = float(self.api_version)
        return body

    @property
    def content_url(self) -> str:
        return f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"

    @property
    def job_type(self) -> str:
        return "V2Ingest" if self.kind == "ingest" else "V2Query"

    def create_body(self) -> dict[str, Any]:
        """The body of ``POST /jobs/ingest`` or ``POST /jobs/query``."""
        with self.lock:
            body = self._head()
            if self.kind == "ingest" and self.state == "Open":
                body["contentUrl"] = self.content_url
            body["lineEnding"] = self.line_ending
            body["columnDelimiter"] = self.column_delimiter
            return body

    def patch_body(self) -> dict[str, Any]:
        """The short body a state change (``PATCH``) answers with."""
        with self.lock:
            return self._head()

    def list_body(self) -> dict[str, Any]:
        """One record of ``GET /jobs/ingest`` or ``GET /jobs/query``."""
        with self.lock:
            body = self._head()
            body["jobType"] = self.job_type
            body["lineEnding"] = self.line_ending
            body["columnDelimiter"] = self.column_delimiter
            return body

    def info_body(self) -> dict[str, Any]:
        """The full body of ``GET /jobs/ingest/{id}`` or ``GET /jobs/query/{id}``."""
        with self.lock:
            body = self._head()
            body["jobType"] = self.job_type
            if self.kind == "ingest":
                if self.state == "Open":
                    body["contentUrl"] = self.content_url
                body["lineEnding"] = self.line_ending
                body["columnDelimiter"] = self.column_delimiter
                if self.state != "Open":
                    body["numberRecordsProcessed"] = self.processed
                    body["numberRecordsFailed"] = self.failed
                body["retries"] = self.retries
                body["totalProcessingTime"] = self.total_processing_ms
                body["apiActiveProcessingTime"] = self.api_active_ms
                body["apexProcessingTime"] = self.apex_ms
            else:
                body["lineEnding"] = self.line_ending
                body["columnDelimiter"] = self.column_delimiter
                body["numberRecordsProcessed"] = self.processed
                body["retries"] = self.retries
                body["totalProcessingTime"] = self.total_processing_ms
                body["isPkChunkingSupported"] = self.pk_chunking_supported
            if self.error_message is not None:
                body["errorMessage"] = self.error_message
            return body


# --------------------------------------------------------------------------------------------
# Query result cells


_BOOLEAN_TEXT = {0: "false", 1: "true", "0": "false", "1": "true"}


def _cell_boolean(value: Any) -> Any:
    return _BOOLEAN_TEXT.get(value, value)


def _cell_double(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return java_double(float(value))
    except (TypeError, ValueError):
        return value


#: Stored values that need rewriting for the CSV. Integers need none: the store's NUMERIC
#: affinity keeps whole numbers as INTEGER, which print as such; text prints as stored.
_CELL_BY_TYPE: dict[str, Callable[[Any], Any]] = {
    "boolean": _cell_boolean,
    "double": _cell_double,
    "currency": _cell_double,
    "percent": _cell_double,
}


def query_cell_converter(field_type: str | None) -> Callable[[Any], Any] | None:
    """How a stored value of this describe type is printed in a Bulk query CSV (None: as is).

    Booleans print ``true``/``false``; double, currency and percent print in Java
    ``Double.toString`` notation (``9.9213206E7``), as Salesforce's Bulk CSV exports do; text,
    dates and dateTimes are stored in their wire form already. Nulls become ``""``.
    """
    return _CELL_BY_TYPE.get(field_type or "")


def csv_row_printer(field_types: Iterable[str | None], delimiter: str = ",",
                    newline: str = "\n") -> Callable[[list[tuple[Any, ...]]], list[str]]:
    """A function that prints raw query rows as Bulk 2.0 CSV lines (every cell quoted).

    The Python printer: processing has SQLite build the lines (``jobs.spool_csv_query``) and
    uses this only for values SQLite cannot print exactly.
    """
    converters = [
        (i, conv)
        for i, conv in enumerate(query_cell_converter(t) for t in field_types)
        if conv is not None
    ]
    lines = _Lines()
    writer = csv.writer(lines, delimiter=delimiter, quoting=csv.QUOTE_ALL,
                        lineterminator=newline)

    def print_rows(chunk: list[tuple[Any, ...]]) -> list[str]:
        if converters:
            # Convert column-wise: map() over a column runs in C between the Python calls,
            # and booleans need no Python call at all (dict.get with the value as default).
            columns: list[Iterable[Any]] = list(zip(*chunk, strict=True))
            for i, conv in converters:
                if conv is _cell_boolean:
                    columns[i] = map(_BOOLEAN_TEXT.get, columns[i], columns[i])
                else:
                    columns[i] = map(conv, columns[i])
            writer.writerows(zip(*columns, strict=True))
        else:
            writer.writerows(chunk)
        printed = list(lines)
        lines.clear()
        return printed

    return print_rows


class _Lines(list):
    """A list that ``csv.writer`` can write to: every ``writerow`` appends one finished line."""

    write = list.append


def _quote_line(values: Iterable[str], delimiter: str, newline: str) -> str:
    """One CSV line with every value quoted."""
    joiner = '"' + delimiter + '"'
    return '"' + joiner.join(v.replace('"', '""') for v in values) + '"' + newline


# --------------------------------------------------------------------------------------------
# State adapters: the parts of EmulatorState this module uses


def _emulator(request: Request) -> Any:
    return request.app.state.emulator


def _setting(state: Any, name: str, default: Any) -> Any:
    value = getattr(state.settings, name, None)
    return default if value is None else value


class _JobFailure(Exception):
    """Processing stopped with a job-level error (the job goes ``Failed``)."""


def _faults(state: Any) -> Any:
    return getattr(state, "faults", None)


def _processing_delay(state: Any) -> float:
    faults = _faults(state)
    return float(faults.processing_delay_seconds) if faults is not None else 0.0


def _never_finish(state: Any) -> bool:
    faults = _faults(state)
    return bool(faults is not None and faults.never_finish)


def _take_failure(state: Any) -> str | None:
    faults = _faults(state)
    return faults.take_batch_failure() if faults is not None else None


def _lock_errors_on(state: Any) -> bool:
    faults = _faults(state)
    return bool(faults is not None and faults.lock_error_share > 0)


#: Parents written by the ingest jobs each engine is processing (weakly keyed by the engine).
_HELD_PARENTS: weakref.WeakKeyDictionary[Any, ParentLocks] = weakref.WeakKeyDictionary()
_HELD_PARENTS_LOCK = threading.Lock()


def _held_parents(engine: Any) -> ParentLocks:
    """The parents Bulk 2.0 ingest work holds in one emulator."""
    with _HELD_PARENTS_LOCK:
        held = _HELD_PARENTS.get(engine)
        if held is None:
            held = _HELD_PARENTS[engine] = ParentLocks()
        return held


def _consume(state: Any, limit: str) -> bool:
    """Use one unit of a daily allocation (``state.usage``); False when it is spent."""
    from sfbulk.emulator.app import LimitExceeded

    try:
        state.usage.consume(limit)
    except LimitExceeded:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Background processing


def _fail_job(job: Bulk2Job, message: str) -> None:
    with job.lock:
        job.error_message = message
        job.set_state("Failed")


def _finish_timing(job: Bulk2Job, started: float) -> None:
    elapsed = int((time.monotonic() - started) * 1000)
    job.total_processing_ms = elapsed
    job.api_active_ms = elapsed


def _check_header(job: Bulk2Job, obj: Any, header: list[str]) -> None:
    """Reject a header Salesforce would reject before processing any row."""
    if len(job.delimiter.join(header)) > MAX_HEADER_CHARACTERS:
        raise _JobFailure(
            "InvalidBatch : The header row exceeds the maximum of "
            f"{MAX_HEADER_CHARACTERS} characters"
        )
    if len(header) > MAX_FIELDS_PER_RECORD:
        raise _JobFailure(
            f"InvalidBatch : Exceeded max number of fields: {MAX_FIELDS_PER_RECORD}"
        )
    seen: set[str] = set()
    for name in header:
        lowered = name.lower()
        if lowered in seen:
            raise _JobFailure(f"InvalidBatch : Duplicate field name : {name}")
        seen.add(lowered)
        if "." in name:
            continue  # relationship columns are resolved (and rejected) by Org.write
        if obj.field(name) is None:
            raise _JobFailure(f"InvalidBatch : Field name not found : {name}")


def _echo_converters(obj: Any, header: list[str]) -> list[Callable[[str], str] | None]:
    converters: list[Callable[[str], str] | None] = []
    for name in header:
        definition = None if "." in name else obj.field(name)
        converters.append(echo_converter(definition.type if definition is not None else None))
    return converters


def _process_ingest(state: Any, job: Bulk2Job) -> None:
    """Worker task: load the uploaded CSV into the org in sub-batches of 10,000 rows."""
    with job.lock:
        if job.state != "UploadComplete" or job.deleted:
            return
        job.set_state("InProgress")
    started = time.monotonic()
    try:
        _run_ingest(state, job, started)
    except _JobFailure as exc:
        _fail_job(job, str(exc))
    except Exception as exc:  # a bug must not leave a job InProgress forever
        logger.exception("Bulk 2.0 ingest job %s failed unexpectedly", job.id)
        _fail_job(job, f"InternalServerError : {exc}")
    finally:
        with job.lock:
            _finish_timing(job, started)
            for result in job.results.values():
                result.finish()
        job.finished.set()


def _upload_blocks(job: Bulk2Job) -> Iterator[bytes]:
    """The spooled upload in blocks of :data:`UPLOAD_BLOCK_BYTES`, read through a descriptor of
    its own: deleting the job or stopping the emulator closes the spool without cutting a read
    short, and the spool's file position is not shared."""
    assert job.upload is not None
    job.upload.flush()
    fd = os.dup(job.upload.fileno())

    def blocks() -> Iterator[bytes]:
        try:
            offset = 0
            while block := os.pread(fd, UPLOAD_BLOCK_BYTES, offset):
                offset += len(block)
                yield block
        finally:
            os.close(fd)

    return blocks()


def _upload_rows(job: Bulk2Job, *, lenient: bool = False) -> Iterator[list[str] | BadRow]:
    """The spooled upload's records by the Bulk CSV rules (:mod:`sfbulk.emulator.ingest`) with
    the job's delimiter; a malformed record comes as a :class:`BadRow`.

    The upload is read block by block as the records are taken, so a job holds about one block
    and one sub-batch in memory, never the whole upload; it is checked to be UTF-8 first, so
    a job with a bad byte anywhere fails before any row is written.

    ``lenient`` decodes bytes that are not UTF-8 as replacement characters, for echoing the
    upload back (unprocessedrecords), never for storing it.

    Raises:
        _JobFailure: when the upload is not UTF-8 (and not ``lenient``).
    """
    if not lenient:
        try:
            check_utf8(_upload_blocks(job))
        except Utf8Error as exc:
            raise _JobFailure(f"InvalidBatch : Failed to read the upload: {exc}") from None
    text = decode_blocks(_upload_blocks(job), "replace" if lenient else "strict")
    return iter_csv_blocks(text, job.delimiter)


def _echo_line(row: list[str] | BadRow, delimiter: str, newline: str) -> str:
    """A record as unprocessedrecords writes it back (a malformed one as it was sent)."""
    if isinstance(row, BadRow):
        return row.raw + newline
    return _quote_line(row, delimiter, newline)


def _run_ingest(state: Any, job: Bulk2Job, started: float) -> None:
    org = state.org
    engine = state.jobs
    obj = org.catalog.get(job.object)
    if job.upload is None:
        raise _JobFailure("InvalidBatch : No data was uploaded for the job")
    _ingest_rows(state, job, started, org, engine, obj, _upload_rows(job))


def _ingest_rows(
    state: Any,
    job: Bulk2Job,
    started: float,
    org: Any,
    engine: Any,
    obj: Any,
    reader: Iterator[list[str] | BadRow],
) -> None:
    from itertools import islice

    from sfbulk.emulator.store import BatchError

    header = next(reader, None)
    if not header or header == [""]:
        raise _JobFailure("InvalidBatch : The uploaded CSV has no header row")
    if isinstance(header, BadRow):
        raise _JobFailure(f"InvalidBatch : Failed to parse CSV header: {header}")
    d, nl = job.delimiter, job.newline
    raw_header = d.join(header)
    successful = engine.result_file(f'"sf__Id"{d}"sf__Created"{d}{raw_header}{nl}'.encode())
    failed = engine.result_file(f'"sf__Id"{d}"sf__Error"{d}{raw_header}{nl}'.encode())
    unprocessed = engine.result_file(f"{raw_header}{nl}".encode())
    with job.lock:
        job.results = {
            "successfulResults": successful,
            "failedResults": failed,
            "unprocessedrecords": unprocessed,
        }
    def leftover(first: list[list[str] | BadRow]) -> None:
        """Everything not processed goes to unprocessedrecords."""
        pending = first
        while pending:
            unprocessed.extend_text([_echo_line(r, d, nl) for r in pending if r and r != [""]])
            pending = list(islice(reader, SUB_BATCH_ROWS))

    try:
        _check_header(job, obj, header)
    except _JobFailure:
        leftover(list(islice(reader, SUB_BATCH_ROWS)))
        raise
    width = len(header)
    typed = [
        (index, conv)
        for index, conv in enumerate(_echo_converters(obj, header))
        if conv is not None
    ]
    check_sizes = job.upload_bytes > MAX_FIELD_CHARACTERS
    lines = _Lines()
    writer = csv.writer(lines, delimiter=d, quoting=csv.QUOTE_ALL, lineterminator=nl)
    delete_like = job.operation in ("delete", "hardDelete")
    id_index = next((i for i, n in enumerate(header) if n.lower() == "id"), None)
    pool = engine.pool

    failure = _take_failure(state)
    if failure is not None:
        leftover(list(islice(reader, SUB_BATCH_ROWS)))
        raise _JobFailure(failure)
    if _never_finish(state):
        _wait_for_abort(job, pool)
        leftover(list(islice(reader, SUB_BATCH_ROWS)))
        return
    # Salesforce runs a job's internal batches in parallel: the parents its sub-batches write
    # stay held until the job ends, so a later sub-batch sharing one contends like a parallel
    # one would, and so do other jobs writing the same parents meanwhile.
    held = _HeldParents(_held_parents(engine))
    try:
        while True:
            chunk = list(islice(reader, SUB_BATCH_ROWS))
            if not chunk:
                break
            if job.abort_event.is_set() or pool.stopping:
                leftover(chunk)
                return
            if not _consume(state, DAILY_BULK_API_BATCHES):
                leftover(chunk)
                raise _JobFailure(
                    "ExceededQuota : The daily allocation of Bulk API batches "
                    "(DailyBulkApiBatches) is used up"
                )
            delay = _processing_delay(state)
            if delay:
                pool.sleep(delay)
            rows: list[list[str]] = []
            payload: list[dict[str, Any]] = []
            ok_cells: list[list[str]] = []
            bad_cells: list[list[str]] = []
            locks = _lock_errors_on(state)
            table: list[list[str]] | None = None
            if not delete_like and _all_full_rows(chunk, width, check_sizes):
                # The common sub-batch: every row a full record, handed to the store as its
                # cells (or, to be checked for lock errors, built without a Python step per row
                # into the records the loop below would build).
                rows = chunk  # type: ignore[assignment]  # every row a list, checked
                if locks:
                    payload = list(map(dict, map(zip, repeat(header), chunk)))
                else:
                    table = rows
                chunk_rows: list[list[str] | BadRow] = []
            else:
                chunk_rows = chunk
            for row in chunk_rows:
                if not row or row == [""]:
                    continue  # a blank line
                if isinstance(row, BadRow):
                    bad_cells.append(["", format_error_cell(*bad_row_error(row)), row.raw])
                    continue
                if len(row) == width and not check_sizes:
                    problem = None  # the whole upload is smaller than one field may be
                else:
                    problem = _row_problem(row, width, header)
                if problem is not None:
                    bad_cells.append(["", problem, *row])
                    continue
                if delete_like:
                    record: dict[str, Any] = {}
                    if id_index is not None and row[id_index] != "":
                        record["Id"] = row[id_index]
                elif "" not in row and "#N/A" not in row:
                    record = dict(zip(header, row, strict=True))
                else:
                    record = {
                        name: (None if value == "#N/A" else value)
                        for name, value in zip(header, row, strict=True)
                        if value != ""
                    }
                rows.append(row)
                payload.append(record)
            if payload and locks:
                rows, payload = _lock_contended(state, held, obj, rows, payload, bad_cells)
            try:
                if table is not None:
                    results = org.write_rows(job.object, job.operation, header, table,
                                             external_id_field=job.external_id_field)
                elif payload:
                    results = org.write(
                        job.object, job.operation, payload, external_id_field=job.external_id_field
                    )
                else:
                    results = []
            except BatchError as exc:
                leftover(chunk)
                message = str(exc)
                if not message.startswith("InvalidBatch"):
                    message = f"InvalidBatch : {message}"
                raise _JobFailure(message) from exc
            block = None if typed or bad_cells else _success_lines(rows, results, d, nl)
            if block is not None:
                # Every row saved and no cell holds a quote: the lines csv.writer would write,
                # joined without a Python step per row.
                successful.extend_block(block, None, len(rows))
                with job.lock:
                    job.processed += len(rows)
                    job.total_processing_ms = int((time.monotonic() - started) * 1000)
                    job.touch()
                continue
            for row, result in zip(rows, results, strict=True):
                if result.success:
                    echoed = row
                    if typed:
                        echoed = list(row)
                        for index, conv in typed:
                            value = echoed[index]
                            if value != "" and value != "#N/A":
                                echoed[index] = conv(value)
                    ok_cells.append(
                        [result.id or "", "true" if result.created else "false", *echoed]
                    )
                else:
                    cell = error_cell(result.errors) or format_error_cell(
                        "UNKNOWN_EXCEPTION", "unknown error", ()
                    )
                    bad_cells.append([result.id or "", cell, *row])
            writer.writerows(ok_cells)
            successful.extend_text(lines)
            lines.clear()
            writer.writerows(bad_cells)
            failed.extend_text(lines)
            lines.clear()
            with job.lock:
                job.processed += len(ok_cells) + len(bad_cells)
                job.failed += len(bad_cells)
                job.total_processing_ms = int((time.monotonic() - started) * 1000)
                job.touch()
    finally:
        held.release()
    with job.lock:
        if job.state == "InProgress":
            job.set_state("JobComplete")


_RESULT_ID = operator.attrgetter("id")
_RESULT_SUCCESS = operator.attrgetter("success")
_RESULT_CREATED = operator.attrgetter("created")
_TRUE_FALSE = {True: "true", False: "false"}


def _success_lines(rows: list[list[str]], results: list[Any], delimiter: str,
                   newline: str) -> bytes | None:
    """The successfulResults lines of a sub-batch (``sf__Id``, ``sf__Created``, the row as sent,
    every cell quoted) when every row was saved and no cell holds a quote, else None.

    Built with joins over the whole sub-batch; the quote count proves no cell needed its quotes
    doubled, so the bytes are those ``csv.writer`` with ``QUOTE_ALL`` gives.
    """
    if not rows or len(rows) != len(results) or not all(map(_RESULT_SUCCESS, results)):
        return None
    ids = list(map(_RESULT_ID, results))
    if None in ids:
        return None
    joint = '"' + delimiter + '"'
    created = map(_TRUE_FALSE.__getitem__, map(_RESULT_CREATED, results))
    heads = map(joint.join, zip(ids, created, strict=True))
    lines = map(joint.join, zip(heads, map(joint.join, rows), strict=True))
    text = '"' + ('"' + newline + '"').join(lines) + '"' + newline
    if text.count('"') != 2 * (sum(map(len, rows)) + 2 * len(rows)):
        return None  # a cell holds a quote: csv.writer doubles it
    return text.encode("utf-8")


def _all_full_rows(chunk: list[list[str] | BadRow], width: int, check_sizes: bool) -> bool:
    """Whether every record of a sub-batch is a list of ``width`` cells, none empty or ``#N/A``,
    and (``check_sizes``) each adding up to no more than a field may hold, so that
    :func:`_row_problem` finds nothing in any of them."""
    if set(map(type, chunk)) != {list} or set(map(len, chunk)) != {width}:
        return False
    contains = operator.contains
    if any(map(contains, chunk, repeat(""))) or any(map(contains, chunk, repeat("#N/A"))):
        return False
    if not check_sizes:
        return True
    within = min(MAX_FIELD_CHARACTERS, MAX_RECORD_CHARACTERS)
    return max(map(len, map("".join, chunk))) <= within


def _wait_for_abort(job: Bulk2Job, pool: Any) -> None:
    """Keep a job InProgress (the never-finish fault) until it is aborted or the pool stops."""
    while not job.abort_event.is_set() and not pool.stopping:
        pool.sleep(0.05)


def _row_problem(row: list[str], width: int, header: list[str]) -> str | None:
    """A row-level error cell for rows Salesforce rejects before saving, else None."""
    if len(row) != width:
        return format_error_cell(
            "INVALID_FIELD",
            f"Row has {len(row)} columns but the header has {width}",
            (),
        )
    sizes = list(map(len, row))
    if max(sizes) > MAX_FIELD_CHARACTERS:
        name = header[next(i for i, size in enumerate(sizes) if size > MAX_FIELD_CHARACTERS)]
        return format_error_cell(
            "LIMIT_EXCEEDED",
            f"Field value exceeds the maximum of {MAX_FIELD_CHARACTERS} characters",
            (name,),
        )
    if sum(sizes) > MAX_RECORD_CHARACTERS:
        return format_error_cell(
            "LIMIT_EXCEEDED",
            f"Record exceeds the maximum of {MAX_RECORD_CHARACTERS} characters",
            (),
        )
    return None


class _HeldParents:
    """The parents one ingest job holds in its emulator's :class:`ParentLocks`."""

    def __init__(self, locks: ParentLocks) -> None:
        self.locks = locks
        self.keys: list[str] = []

    def acquire(self, keys: frozenset[str]) -> set[str]:
        """Hold ``keys`` too; returns those other work (or earlier sub-batches) holds."""
        contended = self.locks.acquire(keys) | self.locks.shared(keys)
        self.keys.extend(keys)
        return contended

    def release(self) -> None:
        self.locks.release(self.keys)
        self.keys.clear()


def _lock_contended(
    state: Any,
    held: _HeldParents,
    obj: Any,
    rows: list[list[str]],
    payload: list[dict[str, Any]],
    bad_cells: list[list[str]],
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Fail with ``UNABLE_TO_LOCK_ROW`` (the fault's share of) the rows whose parent other
    parallel work writes too; returns the rows and records left to write."""
    keys = parent_keys(obj, payload)
    contended = held.acquire(frozenset().union(*keys))
    if not contended:
        return rows, payload
    faults = _faults(state)
    kept_rows: list[list[str]] = []
    kept: list[dict[str, Any]] = []
    for row, record, row_keys in zip(rows, payload, keys, strict=True):
        locked = lock_error(row_keys, contended, faults.roll_lock_error)
        if locked is not None:
            bad_cells.append(["", format_error_cell(*locked, ()), *row])
            continue
        kept_rows.append(row)
        kept.append(record)
    return kept_rows, kept


def _process_query(state: Any, job: Bulk2Job) -> None:
    """Worker task: run the query and spool its rows, CSV-encoded, into a ResultFile."""
    with job.lock:
        cursor = job.cursor
        if job.state != "UploadComplete" or job.deleted or cursor is None:
            job.close_cursor()
            return
        job.set_state("InProgress")
    started = time.monotonic()
    try:
        _run_query(state, job, cursor, started)
    except _JobFailure as exc:
        _fail_job(job, str(exc))
    except Exception as exc:
        logger.exception("Bulk 2.0 query job %s failed unexpectedly", job.id)
        _fail_job(job, f"InternalServerError : {exc}")
    finally:
        job.close_cursor()
        with job.lock:
            _finish_timing(job, started)
            for result in job.results.values():
                result.finish()
        job.finished.set()


def _run_query(state: Any, job: Bulk2Job, cursor: Any, started: float) -> None:
    engine = state.jobs
    pool = engine.pool
    d, nl = job.delimiter, job.newline
    header = _quote_line(list(cursor.columns), d, nl).encode("utf-8")
    result = engine.result_file(header)
    with job.lock:
        job.results = {"results": result}
    failure = _take_failure(state)
    if failure is not None:
        raise _JobFailure(failure)
    delay = _processing_delay(state)
    if delay:
        pool.sleep(delay)
    if _never_finish(state):
        _wait_for_abort(job, pool)
        return
    steps = spool_csv_query(state.org, cursor.compiled, result,
                            csv_row_printer(cursor.field_types, d, nl),
                            delimiter=d, newline=nl)
    for rows in steps:
        with job.lock:
            job.processed += rows
            job.total_processing_ms = int((time.monotonic() - started) * 1000)
        if job.abort_event.is_set() or pool.stopping:
            steps.close()
            return
    with job.lock:
        if job.state == "InProgress":
            job.set_state("JobComplete")


# --------------------------------------------------------------------------------------------
# Request handling


class _HttpError(Exception):
    """A Bulk 2.0 error answer raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = error_response(status, code, message)


def _parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a job-create or PATCH body the way Salesforce reports bad ones."""
    try:
        value = json.loads(raw.decode("utf-8") if raw else "")
    except UnicodeDecodeError as exc:
        raise _HttpError(400, "API_ERROR", f"Invalid UTF-8 in the request body: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _HttpError(
            400,
            "API_ERROR",
            f"Value does not match expected type at [line:{exc.lineno}, column:{exc.colno}]",
        ) from None
    if not isinstance(value, dict):
        raise _HttpError(
            400, "API_ERROR", "Value does not match expected type at [line:1, column:1]"
        )
    return value


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _HttpError(
            400, "API_ERROR", f"Value does not match expected type for {name}: {value!r}"
        )
    return value


def _enum_field(body: dict[str, Any], name: str, allowed: Iterable[str], default: str) -> str:
    value = _text_field(body, name)
    if value is None or value == "":
        return default
    allowed = tuple(allowed)
    if value not in allowed:
        raise _HttpError(
            400,
            "API_ERROR",
            f"Invalid value for {name}: {value}. Allowed values are {', '.join(allowed)}",
        )
    return value


def _csv_options(body: dict[str, Any]) -> tuple[str, str]:
    content_type = _enum_field(body, "contentType", ("CSV",), "CSV")
    assert content_type == "CSV"
    delimiter = _enum_field(body, "columnDelimiter", DELIMITERS, "COMMA")
    line_ending = _enum_field(body, "lineEnding", LINE_ENDINGS, "LF")
    return delimiter, line_ending


def _wants_gzip(request: Request) -> bool:
    accepted = request.headers.get("accept-encoding", "")
    return any(part.split(";")[0].strip().lower() == "gzip" for part in accepted.split(","))


def _gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()


def _csv_response(
    request: Request,
    chunks: Iterable[bytes],
    length: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """Stream CSV bytes, gzip-compressed when the client accepts it (as Salesforce does)."""
    out_headers = dict(headers or {})
    if _wants_gzip(request):
        out_headers["Content-Encoding"] = "gzip"
        out_headers["Vary"] = "Accept-Encoding"
        return StreamingResponse(
            _gzip_chunks(chunks), media_type=CSV_CONTENT_TYPE, headers=out_headers
        )
    out_headers["Content-Length"] = str(length)
    return StreamingResponse(chunks, media_type=CSV_CONTENT_TYPE, headers=out_headers)


class Bulk2Api:
    """The handlers of ``/services/data/vXX.X/jobs/…``; one instance serves every app."""

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Entry point of every Bulk 2.0 request: authenticate, route, map errors."""
        try:
            return await self._dispatch(request)
        except _HttpError as exc:
            return exc.response

    async def _dispatch(self, request: Request) -> Response:
        state = _emulator(request)
        version = request.path_params["version"]
        if request_session(request) is None:
            return invalid_session_response()
        parts = [p for p in request.path_params["rest"].split("/") if p]
        if not parts or parts[0] not in ("ingest", "query") or not _VERSION_RE.match(version):
            return not_found_response()
        kind = parts[0]
        floor = MIN_INGEST_VERSION if kind == "ingest" else MIN_QUERY_VERSION
        if float(version) < floor:
            return not_found_response()
        method = request.method
        if len(parts) == 1:
            if method == "POST":
                if kind == "ingest":
                    return await self.create_ingest(request, state, version)
                return await self.create_query(request, state, version)
            if method == "GET":
                return self.list_jobs(request, state, version, kind)
            return self._method_not_allowed(method, "GET, POST")
        job = self._job(state, kind, parts[1])
        if len(parts) == 2:
            if method == "GET":
                return json_response(job.info_body())
            if method == "PATCH":
                return await self.patch(request, state, job)
            if method == "DELETE":
                return self.delete(state, job)
            return self._method_not_allowed(method, "GET, PATCH, DELETE")
        if len(parts) == 3:
            sub = parts[2]
            if kind == "ingest" and sub == "batches":
                if method != "PUT":
                    return self._method_not_allowed(method, "PUT")
                return await self.upload(request, state, job)
            if kind == "ingest" and sub.lower() in (
                "successfulresults",
                "failedresults",
                "unprocessedrecords",
            ):
                if method != "GET":
                    return self._method_not_allowed(method, "GET")
                return self.ingest_results(request, job, sub.lower())
            if kind == "query" and sub == "results":
                if method != "GET":
                    return self._method_not_allowed(method, "GET")
                return self.query_results(request, state, job, version)
            if kind == "query" and sub.lower() == "resultpages":
                if method != "GET" or float(version) < MIN_RESULT_PAGES_VERSION:
                    return not_found_response()
                return self.result_pages(request, state, job, version)
        return not_found_response()

    @staticmethod
    def _method_not_allowed(method: str, allowed: str) -> Response:
        return error_response(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
        )

    @staticmethod
    def _job(state: Any, kind: str, job_id: str) -> Bulk2Job:
        job = state.jobs.get(job_id, Bulk2Job)
        if job is None or job.kind != kind or job.deleted:
            raise _HttpError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    @staticmethod
    def _user_id(request: Request, state: Any) -> str:
        session = request_session(request)
        return getattr(session, "user_id", None) or state.org.user_id

    # -- ingest ------------------------------------------------------------------------------

    async def create_ingest(self, request: Request, state: Any, version: str) -> Response:
        """``POST /jobs/ingest``: a JSON job, or multipart with the job and its CSV."""
        content_type = request.headers.get("content-type", "")
        csv_data: bytes | None = None
        if content_type.lower().startswith("multipart/form-data"):
            body, csv_data = await self._read_multipart(request)
        else:
            body = _parse_json_body(await request.body())
        job = self._new_ingest_job(request, state, version, body)
        if csv_data is not None:
            job.upload = self._spool(state)
            job.upload.write(csv_data)
            job.upload_count = 1
            job.upload_bytes = len(csv_data)
            self._close_upload(state, job)
        return json_response(job.create_body())

    async def _read_multipart(self, request: Request) -> tuple[dict[str, Any], bytes]:
        try:
            form = await request.form(max_files=2, max_fields=2, max_part_size=4 * 1024 * 1024)
        except HTTPException as exc:
            raise _HttpError(
                400, "INVALIDJOB", f"The multipart job request cannot be read: {exc.detail}"
            ) from None
        try:
            job_part = form.get("job")
            content_part = form.get("content")
            if job_part is None or content_part is None:
                raise _HttpError(
                    400,
                    "INVALIDJOB",
                    "A multipart job request needs a 'job' part and a 'content' part",
                )
            if isinstance(job_part, str):
                raw_job = job_part.encode("utf-8")
            else:
                raw_job = await job_part.read()
            if isinstance(content_part, str):
                data = content_part.encode("utf-8")
            else:
                data = await content_part.read()
        finally:
            await form.close()
        if len(data.decode("utf-8", errors="replace")) > MAX_MULTIPART_CHARACTERS:
            raise _HttpError(
                400,
                "INVALIDJOB",
                f"Multipart job data exceeds the maximum of {MAX_MULTIPART_CHARACTERS} "
                "characters; create the job and upload its data with PUT …/batches",
            )
        return _parse_json_body(raw_job), data

    def _new_ingest_job(
        self, request: Request, state: Any, version: str, body: dict[str, Any]
    ) -> Bulk2Job:
        object_name = _text_field(body, "object")
        operation = _text_field(body, "operation")
        if not operation:
            raise _HttpError(400, "INVALIDJOB", "The operation of the job is required")
        if operation not in INGEST_OPERATIONS:
            raise _HttpError(
                400,
                "API_ERROR",
                f"Invalid value for operation: {operation}. "
                f"Allowed values are {', '.join(INGEST_OPERATIONS)}",
            )
        if not object_name:
            raise _HttpError(400, "INVALIDJOB", "The object of the job is required")
        delimiter, line_ending = _csv_options(body)
        obj = state.org.catalog.get(object_name)
        if obj is None:
            raise _HttpError(400, "INVALIDENTITY", f"Unable to find object: {object_name}")
        if not obj.bulk_api:
            # "Allow Bulk API Access" off (metadata enableBulkApi=false): refused at create,
            # with the same answer a Bulk 2.0 query on the object gets.
            raise _HttpError(400, "INVALIDENTITY", f"{obj.name} is not supported by the Bulk API")
        external_id = _text_field(body, "externalIdFieldName")
        if operation == "upsert":
            if not external_id:
                raise _HttpError(
                    400,
                    "INVALIDJOB",
                    f"External ID was blank for {obj.name}. "
                    "An External ID must be specified for upsert.",
                )
            definition = obj.field(external_id)
            if definition is None or not (
                definition.name == "Id" or definition.external_id or definition.id_lookup
            ):
                raise _HttpError(
                    400,
                    "INVALIDJOB",
                    f"Field name provided, {external_id} does not match an External ID, "
                    f"Salesforce Id, or indexed field for {obj.name}",
                )
            external_id = definition.name
        elif external_id is not None and not external_id:
            external_id = None
        job = Bulk2Job(
            id=state.jobs.new_job_id(),
            kind="ingest",
            operation=operation,
            object=obj.name,
            created_by_id=self._user_id(request, state),
            api_version=version,
            line_ending=line_ending,
            column_delimiter=delimiter,
            external_id_field=external_id if operation == "upsert" else None,
            assignment_rule_id=_text_field(body, "assignmentRuleId") or None,
        )
        state.jobs.add(job.id, job)
        logger.info("Bulk 2.0 ingest job %s created: %s %s", job.id, operation, obj.name)
        return job

    @staticmethod
    def _spool(state: Any) -> BinaryIO:
        directory = getattr(state.jobs, "result_directory", None)
        return tempfile.TemporaryFile(prefix="sfbulk-upload-", dir=directory)

    async def upload(self, request: Request, state: Any, job: Bulk2Job) -> Response:
        """``PUT /jobs/ingest/{id}/batches``: stream the CSV to a spool file; 201, empty body."""
        media = request.headers.get("content-type", "text/csv").split(";")[0].strip().lower()
        if media not in ("text/csv", ""):
            raise _HttpError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"Content type '{media}' is not supported for job {job.id} data; use text/csv",
            )
        with job.lock:
            if job.state != "Open":
                raise _HttpError(
                    400,
                    "INVALIDJOBSTATE",
                    f"Job {job.id} is not in the Open state (state: {job.state}); "
                    "data can only be uploaded to an Open job",
                )
        limit_raw = MAX_UPLOAD_BASE64_BYTES // 4 * 3
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit_raw:
            raise self._too_large(job)
        spool = self._spool(state)
        size = 0
        too_large = False
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit_raw:
                    too_large = True  # keep draining so the client sees our answer
                    continue
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        if too_large:
            spool.close()
            raise self._too_large(job)
        with job.lock:
            if job.state != "Open":
                spool.close()
                raise _HttpError(
                    400, "INVALIDJOBSTATE", f"Job {job.id} left the Open state during the upload"
                )
            job.upload_count += 1
            if job.upload is None:
                job.upload = spool
                job.upload_bytes = size
            else:
                spool.close()  # a second upload makes UploadComplete fail; keep the first
            job.touch()
        return Response(status_code=201)

    @staticmethod
    def _too_large(job: Bulk2Job) -> _HttpError:
        return _HttpError(
            400,
            "EXCEEDED_QUOTA",
            f"The data uploaded for job {job.id} exceeds the maximum of "
            f"{MAX_UPLOAD_BASE64_BYTES} bytes after base64 encoding (about 100 MB of CSV); "
            "split it over several jobs",
        )

    @staticmethod
    def _close_upload(state: Any, job: Bulk2Job) -> None:
        """Move an Open job to UploadComplete and queue its processing."""
        job.set_state("UploadComplete")
        state.jobs.pool.submit(job.id, lambda: _process_ingest(state, job), serial=True)

    async def patch(self, request: Request, state: Any, job: Bulk2Job) -> Response:
        """``PATCH /jobs/{ingest|query}/{id}``: UploadComplete (ingest) or Aborted."""
        body = _parse_json_body(await request.body())
        target = _text_field(body, "state")
        with job.lock:
            current = job.state
            if target == "Aborted":
                if current in TERMINAL_STATES:
                    word = "Completed" if current == "JobComplete" else current
                    raise _HttpError(
                        400, "INVALIDJOBSTATE", f"Aborting already {word} Job not allowed"
                    )
                job.abort_event.set()
                job.set_state("Aborted")
                answer = job.patch_body()
            elif target == "UploadComplete" and job.kind == "ingest":
                if current != "Open":
                    raise _HttpError(
                        400,
                        "INVALIDJOBSTATE",
                        f"Closing already {current} Job not allowed",
                    )
                if job.upload_count > 1:
                    raise _HttpError(
                        400,
                        "INVALIDJOB",
                        f"Found multipe contents for job: <{job.id[:15]}>, please 'Close' / "
                        "'Abort' / 'Delete' the current Job then create a new Job and make sure "
                        "you only do 'PUT' once on a given Job.",
                    )
                self._close_upload(state, job)
                answer = job.patch_body()
            else:
                raise _HttpError(
                    400,
                    "INVALIDJOBSTATE",
                    f"Invalid state for job {job.id}: {target!r}; "
                    + ("use UploadComplete or Aborted" if job.kind == "ingest" else "use Aborted"),
                )
        if target == "Aborted":
            if state.jobs.pool.cancel(job.id) and job.kind == "query":
                job.close_cursor()  # the worker will never read it
            if job.kind == "ingest" and current in ("Open", "UploadComplete"):
                # Never started: the upload becomes unprocessedrecords here. A job aborted
                # InProgress has its worker write the rows it did not reach.
                self._unprocessed_after_abort(state, job)
        return json_response(answer)

    @staticmethod
    def _unprocessed_after_abort(state: Any, job: Bulk2Job) -> None:
        """An ingest job aborted before processing keeps its upload as unprocessed records."""
        with job.lock:
            if job.results or job.upload is None:
                return  # processing started: the worker writes the unprocessed rows
            d, nl = job.delimiter, job.newline
            engine = state.jobs
            reader = _upload_rows(job, lenient=True)
            first = next(reader, None) or []
            header = [first.raw] if isinstance(first, BadRow) else first
            raw_header = d.join(header)
            unprocessed = engine.result_file(f"{raw_header}{nl}".encode())
            unprocessed.extend_text([_echo_line(r, d, nl) for r in reader if r and r != [""]])
            job.results = {
                "successfulResults": engine.result_file(
                    f'"sf__Id"{d}"sf__Created"{d}{raw_header}{nl}'.encode()
                ),
                "failedResults": engine.result_file(
                    f'"sf__Id"{d}"sf__Error"{d}{raw_header}{nl}'.encode()
                ),
                "unprocessedrecords": unprocessed,
            }
            for result in job.results.values():
                result.finish()

    def delete(self, state: Any, job: Bulk2Job) -> Response:
        """``DELETE /jobs/{ingest|query}/{id}``: only terminal (or UploadComplete ingest) jobs."""
        deletable = TERMINAL_STATES + (("UploadComplete",) if job.kind == "ingest" else ())
        with job.lock:
            if job.state not in deletable:
                raise _HttpError(
                    400,
                    "API_ERROR",
                    "Error encountered when deleting the job because the job is not terminated",
                )
            job.deleted = True
            job.abort_event.set()
        state.jobs.pool.cancel(job.id)
        state.jobs.remove(job.id)
        job.discard_results()
        return Response(status_code=204)

    def ingest_results(self, request: Request, job: Bulk2Job, which: str) -> Response:
        """``GET …/successfulResults/``, ``failedResults/``, ``unprocessedrecords/``."""
        key = {
            "successfulresults": "successfulResults",
            "failedresults": "failedResults",
            "unprocessedrecords": "unprocessedrecords",
        }[which]
        with job.lock:
            state_now = job.state
            result = job.results.get(key)
        if state_now not in TERMINAL_STATES:
            raise _HttpError(
                400,
                "INVALIDJOBSTATE",
                f"Results of job {job.id} are available once it is complete (state: {state_now})",
            )
        if result is None:
            return _csv_response(request, [], 0)
        return _csv_response(request, result.iter_page(0, None), result.page_bytes(0, None))

    # -- query -------------------------------------------------------------------------------

    async def create_query(self, request: Request, state: Any, version: str) -> Response:
        """``POST /jobs/query``: validate the SOQL now, run it in the background."""
        body = _parse_json_body(await request.body())
        operation = _text_field(body, "operation") or ""
        if operation not in QUERY_OPERATIONS:
            raise _HttpError(
                400,
                "API_ERROR",
                f"Invalid value for operation: {operation}. "
                f"Allowed values are {', '.join(QUERY_OPERATIONS)}",
            )
        soql = _text_field(body, "query")
        if not soql or not soql.strip():
            raise _HttpError(400, "INVALIDJOB", "The query of the job is required")
        delimiter, line_ending = _csv_options(body)
        cursor = self._prepare_query(state, soql, operation)
        obj = state.org.catalog.get(cursor.object)
        if not _consume(state, DAILY_BULK_V2_QUERY_JOBS):
            cursor.close()
            raise _HttpError(
                400,
                "LIMIT_EXCEEDED",
                "The daily limit of Bulk API 2.0 query jobs (DailyBulkV2QueryJobs) is exhausted",
            )
        job = Bulk2Job(
            id=state.jobs.new_job_id(),
            kind="query",
            operation=operation,
            object=obj.name if obj is not None else cursor.object,
            created_by_id=self._user_id(request, state),
            api_version=version,
            line_ending=line_ending,
            column_delimiter=delimiter,
            query=soql,
            pk_chunking_supported=bool(getattr(obj, "pk_chunking", False)),
            state="UploadComplete",
            cursor=cursor,
        )
        state.jobs.add(job.id, job)
        logger.info("Bulk 2.0 query job %s created on %s", job.id, job.object)
        state.jobs.pool.submit(job.id, lambda: _process_query(state, job), serial=True)
        return json_response(job.create_body())

    @staticmethod
    def _prepare_query(state: Any, soql: str, operation: str) -> Any:
        """Compile the SOQL through the org; Salesforce rejects bad queries at create time."""
        from sfbulk.emulator.soql import SoqlError, compile_soql

        org = state.org
        try:
            # Compiled now (Salesforce rejects a bad query at create time), run by the worker.
            cursor = PreparedQuery(compile_soql(
                soql, org.catalog, operation == "queryAll", now=org.clock()
            ))
        except SoqlError as exc:
            raise _HttpError(400, exc.code, exc.message) from None
        obj = state.org.catalog.get(cursor.object)
        if obj is not None and not obj.bulk_queryable:
            cursor.close()
            raise _HttpError(400, "INVALIDENTITY", f"{obj.name} is not supported by the Bulk API")
        return cursor

    def _finished_query(self, job: Bulk2Job, version: str) -> ResultFile:
        if version != job.api_version:
            raise _HttpError(
                409,
                "API_VERSION_MISMATCH",
                f"Results of job {job.id} must be fetched with the API version that created it "
                f"(v{job.api_version}), not v{version}",
            )
        with job.lock:
            state_now = job.state
            result = job.results.get("results")
        if state_now != "JobComplete" or result is None:
            raise _HttpError(
                400,
                "INVALIDJOBSTATE",
                f"Results of query job {job.id} are available once it is JobComplete "
                f"(state: {state_now})",
            )
        return result

    def query_results(self, request: Request, state: Any, job: Bulk2Job, version: str) -> Response:
        """``GET /jobs/query/{id}/results?maxRecords=&locator=``: one page, served by seeking."""
        result = self._finished_query(job, version)
        start = 0
        locator = request.query_params.get("locator")
        if locator:
            decoded = decode_locator(locator)
            if decoded is None or decoded > result.row_count:
                raise _HttpError(
                    400, "INVALIDLOCATOR", f"Invalid locator for job {job.id}: {locator}"
                )
            start = decoded
        page_size = self._page_size(request, state)
        rows = result.page_count(start, page_size)
        following = start + rows
        headers = {
            "Sforce-Locator": encode_locator(following)
            if following < result.row_count
            else "null",
            "Sforce-NumberOfRecords": str(rows),
        }
        if rows == 0:
            return _csv_response(request, [], 0, headers)
        return _csv_response(
            request,
            result.iter_page(start, page_size),
            result.page_bytes(start, page_size),
            headers,
        )

    @staticmethod
    def _page_size(request: Request, state: Any) -> int:
        raw = request.query_params.get("maxRecords")
        if raw is None or raw == "":
            return int(_setting(state, "bulk2_page_rows", DEFAULT_QUERY_PAGE_SIZE))
        if not raw.isdigit() or int(raw) < 1:
            raise _HttpError(
                400, "API_ERROR", f"maxRecords must be a positive whole number, not {raw!r}"
            )
        return int(raw)

    def result_pages(self, request: Request, state: Any, job: Bulk2Job, version: str) -> Response:
        """``GET /jobs/query/{id}/resultPages`` (v58+): up to five page URLs at a time."""
        result = self._finished_query(job, version)
        size = int(_setting(state, "bulk2_page_rows", DEFAULT_QUERY_PAGE_SIZE))
        start = 0
        locator = request.query_params.get("locator")
        if locator:
            decoded = decode_locator(locator)
            if decoded is None or decoded > result.row_count:
                raise _HttpError(
                    400, "INVALIDLOCATOR", f"Invalid locator for job {job.id}: {locator}"
                )
            start = decoded
        base = f"/services/data/v{version}/jobs/query/{job.id}"
        pages: list[dict[str, str]] = []
        position = start
        while position < result.row_count and len(pages) < RESULT_PAGES_PER_RESPONSE:
            pages.append({"resultUrl": f"{base}/results?locator={encode_locator(position)}"})
            position += size
        done = position >= result.row_count
        return json_response(
            {
                "resultPages": pages,
                "nextRecordsUrl": None
                if done
                else f"{base}/resultpages?locator={encode_locator(position)}",
                "done": done,
            }
        )

    # -- listing -----------------------------------------------------------------------------

    def list_jobs(self, request: Request, state: Any, version: str, kind: str) -> Response:
        """``GET /jobs/ingest`` / ``GET /jobs/query``: both APIs' jobs, 1,000 per page."""
        params = request.query_params
        job_type = params.get("jobType")
        concurrency = params.get("concurrencyMode")
        pk_flag = params.get("isPkChunkingEnabled")
        records = []
        for job in state.jobs.jobs():
            body = _list_record(job, kind)
            if body is None:
                continue
            if job_type and body["jobType"] != job_type:
                continue
            if concurrency and body["concurrencyMode"] != concurrency:
                continue
            if pk_flag is not None and pk_flag.lower() in ("true", "false"):
                enabled = _pk_chunking_enabled(job)
                if enabled != (pk_flag.lower() == "true"):
                    continue
            records.append(body)
        start = 0
        locator = params.get("queryLocator")
        if locator:
            _, _, offset = locator.rpartition("-")
            if not offset.isdigit():
                raise _HttpError(400, "INVALID_QUERY_LOCATOR", f"Invalid query locator: {locator}")
            start = int(offset)
        page_size = int(_setting(state, "job_list_page_size", LIST_PAGE_SIZE))
        page = records[start : start + page_size]
        following = start + len(page)
        done = following >= len(records)
        next_url = None
        if not done:
            token = make_id("01g", following)
            next_url = f"/services/data/v{version}/jobs/{kind}?queryLocator={token}-{following}"
        return json_response({"done": done, "records": page, "nextRecordsUrl": next_url})


def _list_record(job: Any, kind: str) -> dict[str, Any] | None:
    """A job's record in a listing of ``kind`` jobs, or None when it does not belong there.

    Bulk 1.0 jobs are listed too, as ``jobType: "Classic"``, with the same fields.
    """
    if isinstance(job, Bulk2Job):
        return job.list_body() if job.kind == kind else None
    from sfbulk.emulator.bulk1 import Bulk1Job

    if not isinstance(job, Bulk1Job):
        return None
    if (kind == "query") != (job.operation in QUERY_OPERATIONS):
        return None
    with job.lock:
        body: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": job.created_by,
            "createdDate": format_json_datetime(job.created),
            "systemModstamp": format_json_datetime(job.modstamp or job.created),
            "state": job.state,
        }
        if job.external_id_field:
            body["externalIdFieldName"] = job.external_id_field
        body["concurrencyMode"] = job.concurrency_mode
        body["contentType"] = job.content_type
        body["apiVersion"] = float(job.api_version)
        body["jobType"] = "Classic"
        body["lineEnding"] = "LF"
        body["columnDelimiter"] = "COMMA"
    return body


def _pk_chunking_enabled(job: Any) -> bool:
    """Whether a listed job uses PK chunking (Bulk 1.0 header; 2.0 query jobs when supported)."""
    if isinstance(job, Bulk2Job):
        return job.kind == "query" and job.pk_chunking_supported
    return getattr(job, "pk_chunking", None) is not None


_API = Bulk2Api()


def routes() -> list[BaseRoute]:
    """The Bulk 2.0 routes, mounted by ``app.create_app``."""
    return [
        Route(
            "/services/data/v{version}/jobs/{rest:path}",
            _API.handle,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        )
    ]
