"""Bulk API 1.0 client: jobs, batches, PK-chunked queries and per-record results.

Bulk 1.0 is still the better tool where Bulk 2.0 has no equivalent: Serial concurrency for loads
that lock shared parents, explicit PK chunking (with ``parent`` for Share and History objects and
``startRow`` to resume), JSON/XML payloads, and binary attachments in ZIP batches.

Shape of the API:

- :class:`JobInfo` / :class:`BatchInfo` are parsed from XML (namespace :data:`ASYNC_NS`) or JSON,
  whichever the org answered with.
- :class:`Bulk1` wraps one :class:`~sfbulk.http.SalesforceClient`: ``create_job``, ``add_batch``,
  ``close_job``, ``abort_job``, ``get_job``, ``get_batch``, ``list_batches``, ``batch_results``,
  ``query_result_ids``, ``iter_query_result``, ``wait_for_batches``, and two orchestrations:
  :meth:`Bulk1.query` (a streamed query, PK chunking included) and :meth:`Bulk1.ingest` (a load in
  batches with per-record results in input order).
- Every job created is registered with the client's open-job registry and unregistered once
  closed or aborted, so an exit handler aborts whatever an interrupted process left open;
  :meth:`Bulk1.query` and :meth:`Bulk1.ingest` abort their job themselves on any failure,
  generator close, ``KeyboardInterrupt`` or ``SystemExit``.

Polling starts quickly (``poll_interval_seconds``, 0.5 s) and grows by 1.5 times up to
``poll_interval_max_seconds``: a small job finishes in a second or two without waiting, and a large
one costs few API calls. One ``GET …/batch`` call polls every batch of a job.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from itertools import repeat
from operator import itemgetter
from typing import IO, Any, NamedTuple
from xml.sax.saxutils import escape

import defusedxml.ElementTree as safe_et

from sfbulk.csvcodec import iter_csv_rows
from sfbulk.errors import (
    JobFailedError,
    JobTimeoutError,
    RecordCountMismatchError,
    SalesforceError,
)
from sfbulk.http import ASYNC_NS, JobPolling, SalesforceClient

logger = logging.getLogger(__name__)

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete", "query", "queryAll")
CONTENT_TYPES = {
    "CSV": "text/csv; charset=UTF-8",
    "JSON": "application/json",
    "XML": "application/xml; charset=UTF-8",
    "ZIP_CSV": "zip/csv",
    "ZIP_JSON": "zip/json",
    "ZIP_XML": "zip/xml",
}
JOB_TERMINAL = frozenset({"Closed", "Aborted", "Failed"})
BATCH_TERMINAL = frozenset({"Completed", "Failed", "NotProcessed", "Not Processed"})
MAX_PK_CHUNK_SIZE = 250_000
#: Name of the records file a ZIP batch must hold at its root.
ZIP_REQUEST_FILE = "request.txt"
_CHUNK = 256 * 1024
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_FILE_REF = re.compile(r"^#(.+)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _api_version(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if "." in text else f"{text}.0"


def _parse_body(data: bytes | str) -> Any:
    """Parse a Bulk 1.0 body as JSON or XML by its first character (the format follows the job)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return json.loads(stripped)
    return safe_et.fromstring(stripped.encode("utf-8"))


def _xml_fields(element: Any) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for child in element:
        out[_local(child.tag)] = None if child.get(_XSI_NIL) == "true" else (child.text or "")
    return out


# --------------------------------------------------------------------------------------------
# Records


def _info_fields(data: bytes | str) -> Mapping[str, Any]:
    """The fields of a jobInfo or batchInfo body: the JSON object, or the XML element's children."""
    body = _parse_body(data)
    return body if isinstance(body, dict) else _xml_fields(body)


@dataclass(frozen=True)
class JobInfo:
    """A Bulk 1.0 job as Salesforce reports it (``jobInfo``)."""

    id: str
    operation: str
    object: str
    state: str
    content_type: str | None = None
    concurrency_mode: str | None = None
    external_id_field: str | None = None
    created_by_id: str | None = None
    created_date: str | None = None
    system_modstamp: str | None = None
    number_batches_queued: int = 0
    number_batches_in_progress: int = 0
    number_batches_completed: int = 0
    number_batches_failed: int = 0
    number_batches_total: int = 0
    number_records_processed: int = 0
    number_records_failed: int = 0
    number_retries: int = 0
    api_version: str | None = None
    total_processing_time: int = 0
    api_active_processing_time: int = 0
    apex_processing_time: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobInfo:
        """Build from the JSON object or the XML element's fields."""
        return cls(
            id=str(data.get("id") or ""),
            operation=str(data.get("operation") or ""),
            object=str(data.get("object") or ""),
            state=str(data.get("state") or ""),
            content_type=data.get("contentType"),
            concurrency_mode=data.get("concurrencyMode"),
            external_id_field=data.get("externalIdFieldName"),
            created_by_id=data.get("createdById"),
            created_date=data.get("createdDate"),
            system_modstamp=data.get("systemModstamp"),
            number_batches_queued=_int(data.get("numberBatchesQueued")),
            number_batches_in_progress=_int(data.get("numberBatchesInProgress")),
            number_batches_completed=_int(data.get("numberBatchesCompleted")),
            number_batches_failed=_int(data.get("numberBatchesFailed")),
            number_batches_total=_int(data.get("numberBatchesTotal")),
            number_records_processed=_int(data.get("numberRecordsProcessed")),
            number_records_failed=_int(data.get("numberRecordsFailed")),
            number_retries=_int(data.get("numberRetries")),
            api_version=_api_version(data.get("apiVersion")),
            total_processing_time=_int(data.get("totalProcessingTime")),
            api_active_processing_time=_int(data.get("apiActiveProcessingTime")),
            apex_processing_time=_int(data.get("apexProcessingTime")),
        )

    @classmethod
    def parse(cls, data: bytes | str) -> JobInfo:
        """Parse a ``jobInfo`` body, XML or JSON."""
        return cls.from_mapping(_info_fields(data))

    @property
    def is_terminal(self) -> bool:
        """Closed, Aborted or Failed: no more batches can be added."""
        return self.state in JOB_TERMINAL


@dataclass(frozen=True)
class BatchInfo:
    """A Bulk 1.0 batch as Salesforce reports it (``batchInfo``)."""

    id: str
    job_id: str
    state: str
    state_message: str | None = None
    created_date: str | None = None
    system_modstamp: str | None = None
    number_records_processed: int = 0
    number_records_failed: int = 0
    total_processing_time: int = 0
    api_active_processing_time: int = 0
    apex_processing_time: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BatchInfo:
        """Build from the JSON object or the XML element's fields."""
        return cls(
            id=str(data.get("id") or ""),
            job_id=str(data.get("jobId") or ""),
            state=str(data.get("state") or ""),
            state_message=data.get("stateMessage") or None,
            created_date=data.get("createdDate"),
            system_modstamp=data.get("systemModstamp"),
            number_records_processed=_int(data.get("numberRecordsProcessed")),
            number_records_failed=_int(data.get("numberRecordsFailed")),
            total_processing_time=_int(data.get("totalProcessingTime")),
            api_active_processing_time=_int(data.get("apiActiveProcessingTime")),
            apex_processing_time=_int(data.get("apexProcessingTime")),
        )

    @classmethod
    def parse(cls, data: bytes | str) -> BatchInfo:
        """Parse a ``batchInfo`` body, XML or JSON."""
        return cls.from_mapping(_info_fields(data))

    @classmethod
    def parse_list(cls, data: bytes | str) -> list[BatchInfo]:
        """Parse a ``batchInfoList`` body (a single batch may come as an object, not a list)."""
        body = _parse_body(data)
        if isinstance(body, dict):
            items = body.get("batchInfo") or []
            if isinstance(items, dict):
                items = [items]
            return [cls.from_mapping(item) for item in items]
        return [cls.from_mapping(_xml_fields(el)) for el in body if _local(el.tag) == "batchInfo"]

    @property
    def is_terminal(self) -> bool:
        """Completed, Failed or NotProcessed."""
        return self.state in BATCH_TERMINAL

    @property
    def not_processed(self) -> bool:
        """The batch was not processed (job aborted, or the original batch of a PK-chunked job)."""
        return self.state in ("NotProcessed", "Not Processed")


class RowResult(NamedTuple):
    """The outcome of one ingest row, in the order rows were sent.

    ``error`` is Salesforce's ``STATUS_CODE:message:fields --`` text (JSON and XML errors are
    rendered the same way), ``None`` on success.
    """

    id: str | None
    success: bool
    created: bool
    error: str | None

    @property
    def status_code(self) -> str | None:
        """The error's status code (``REQUIRED_FIELD_MISSING`` …), if the row failed."""
        return self.error.split(":", 1)[0] if self.error else None


def _render_error(status: str | None, message: str | None, fields: Iterable[str]) -> str:
    return f"{status or ''}:{message or ''}:{','.join(fields)} --"


def _bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def parse_batch_results(data: bytes, content_type: str | None = None) -> list[RowResult]:
    """Parse an ingest batch's results (CSV, JSON or XML) into one :class:`RowResult` per row.

    The format is taken from ``content_type`` when given, else sniffed from the body.
    """
    stripped = data.lstrip()
    kind = (content_type or "").lower()
    if "json" in kind or stripped[:1] == b"[":
        rows = json.loads(data.decode("utf-8"))
        out = []
        for row in rows:
            errors = row.get("errors") or []
            error = None
            if errors:
                first = errors[0]
                error = _render_error(
                    first.get("statusCode"), first.get("message"), first.get("fields") or []
                )
            out.append(
                RowResult(
                    row.get("id") or None,
                    _bool(row.get("success")),
                    _bool(row.get("created")),
                    error,
                )
            )
        return out
    if "xml" in kind or stripped[:1] == b"<":
        root = safe_et.fromstring(data)
        out = []
        for result in root:
            if _local(result.tag) != "result":
                continue
            values: dict[str, str] = {}
            error = None
            for child in result:
                name = _local(child.tag)
                if name == "errors":
                    status = message = None
                    fields: list[str] = []
                    for part in child:
                        part_name = _local(part.tag)
                        if part_name == "statusCode":
                            status = part.text
                        elif part_name == "message":
                            message = part.text
                        elif part_name == "fields" and part.text:
                            fields.append(part.text)
                    if error is None:
                        error = _render_error(status, message, fields)
                else:
                    values[name] = child.text or ""
            out.append(
                RowResult(
                    values.get("id") or None,
                    _bool(values.get("success")),
                    _bool(values.get("created")),
                    error,
                )
            )
        return out
    rows_iter = iter_csv_rows([data])
    header = next(rows_iter, None)
    if header is None:
        return []
    index = {name.lower(): i for i, name in enumerate(header)}
    rows = list(rows_iter)
    if not rows:
        return []
    # Column by column by C loops (one RowResult per ingested record, so no Python per row in
    # the usual case); each column gives what reading it cell by cell would.
    shortest = min(map(len, rows))

    def column(name: str) -> list[str]:
        at = index.get(name)
        if at is None:
            return [""] * len(rows)
        if at < shortest:
            return list(map(itemgetter(at), rows))
        return [row[at] if at < len(row) else "" for row in rows]

    ids = _none_if_empty(column("id"))
    errors = _none_if_empty(column("error"))
    return list(map(tuple.__new__, repeat(RowResult),
                    zip(ids, _bools(column("success")), _bools(column("created")), errors,
                        strict=True)))


#: Result cells as Salesforce writes them -> what :func:`_bool` reads.
_BOOL_CELLS = {"true": True, "false": False}


def _bools(cells: list[str]) -> list[bool]:
    """:func:`_bool` of every cell (by a dict look-up when they are spelled as usual)."""
    flags = list(map(_BOOL_CELLS.get, cells))
    if None in flags:
        if cells.count("") == len(cells):  # no such column
            return [False] * len(cells)
        return [_bool(cell) for cell in cells]
    return flags  # type: ignore[return-value]


def _none_if_empty(cells: list[str]) -> list[str | None]:
    """``[cell or None for cell in cells]``, without the loop when no cell (or every one) is
    empty."""
    empty = cells.count("")
    if not empty:
        return cells  # type: ignore[return-value]
    if empty == len(cells):
        return [None] * empty
    return [cell or None for cell in cells]


# --------------------------------------------------------------------------------------------
# ZIP batches


def build_zip_batch(request: bytes, files: Mapping[str, bytes]) -> bytes:
    """Build a binary-attachment batch: ``request.txt`` at the root plus the referenced files.

    Args:
        request: The records (CSV for ``ZIP_CSV`` jobs) whose binary fields hold ``#name``.
        files: Attachment bytes by the name used after ``#`` (subdirectories allowed).

    Raises:
        ValueError: A ``#name`` cell of a CSV request names no file in ``files``.
    """
    if request.lstrip()[:1] not in (b"<", b"[", b"{"):
        rows = iter_csv_rows([request])
        next(rows, None)
        for number, row in enumerate(rows, start=2):
            for cell in row:
                match = _FILE_REF.match(cell)
                if match and match.group(1) not in files:
                    raise ValueError(
                        f"request.txt row {number} references #{match.group(1)}, which is not "
                        "among the files"
                    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(ZIP_REQUEST_FILE, request)
        for name, content in files.items():
            if name == ZIP_REQUEST_FILE:
                raise ValueError("an attachment may not be named request.txt")
            archive.writestr(name.lstrip("/"), content)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Query results


def _iso_from_millis(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    stamp = _EPOCH + timedelta(milliseconds=int(value))
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _flatten_json(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_json(value, name + "."))
        else:
            out[name] = value
    return out


def _flatten_xml(element: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if prefix and name == "type" and len(child) == 0:
            continue  # the sObject type of a nested relationship
        key = f"{prefix}{name}"
        if len(child):
            out.update(_flatten_xml(child, key + "."))
        elif child.get(_XSI_NIL) == "true":
            out.setdefault(key, None)
        else:
            out.setdefault(key, child.text or "")
    return out


def iter_result_rows(
    body: IO[bytes],
    content_type: str,
    *,
    datetime_fields: Collection[str] = (),
) -> Iterator[dict[str, Any]]:
    """Yield the rows of one query result file as dicts keyed by column.

    CSV rows keep their cells as strings (``Account.Name`` style headers); an empty result
    (``Records not found for this query``) yields nothing. JSON records are flattened to the same
    dotted keys, ``attributes`` dropped, numbers with a fraction read as exact
    :class:`~decimal.Decimal`, and the ``datetime_fields`` (epoch milliseconds in JSON)
    become ISO UTC strings ``YYYY-MM-DDTHH:MM:SS.sssZ``. XML records are streamed element by
    element; ``xsi:nil`` becomes ``None``.
    """
    if content_type == "JSON":
        # Decimal keeps every digit of currency and double values (a float would round them).
        records = json.load(io.TextIOWrapper(body, encoding="utf-8"), parse_float=Decimal)
        for record in records or []:
            row = _flatten_json(record)
            for name in datetime_fields:
                if name in row:
                    row[name] = _iso_from_millis(row[name])
            yield row
        return
    if content_type == "XML":
        depth = 0
        for event, element in safe_et.iterparse(body, events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 1 and _local(element.tag) == "records":
                yield _flatten_xml(element)
                element.clear()
        return
    cells = iter_csv_rows(iter(lambda: body.read(_CHUNK), b""))
    header = next(cells, None)
    if header is None:
        return
    width = len(header)
    for values in cells:
        if len(values) != width:
            raise SalesforceError(
                f"a result row has {len(values)} cells but the header has {width}"
            )
        yield dict(zip(header, values, strict=True))


# --------------------------------------------------------------------------------------------
# The client


@dataclass
class BatchOutcome:
    """One ingest batch's final state and, when Salesforce produced them, its row results."""

    batch: BatchInfo
    results: list[RowResult] | None


@dataclass
class IngestOutcome:
    """A finished Bulk 1.0 load: the job and each batch's outcome, in the order sent."""

    job: JobInfo
    batches: list[BatchOutcome] = field(default_factory=list)

    @property
    def results(self) -> list[RowResult]:
        """Every row result of the completed batches, in input order."""
        return [row for outcome in self.batches for row in outcome.results or []]


class Bulk1(JobPolling):
    """Bulk API 1.0 operations over one :class:`SalesforceClient`.

    Takes the client and poll settings of :class:`~sfbulk.http.JobPolling`
    (``job_timeout_seconds`` bounds the wait for a job's batches).
    """

    #: A query wait reads the job itself on every this many polls that found no Queued batch
    #: (see :meth:`_raise_if_job_ended`): one call more per three, only while batches run.
    JOB_CHECK_EVERY = 3

    def __init__(self, client: SalesforceClient, **polling: float) -> None:
        super().__init__(client, **polling)
        self._content_types: dict[str, str] = {}

    # ------------------------------------------------------------------------------ jobs

    @staticmethod
    def pk_chunking_header(
        pk_chunking: bool | int | None,
        parent: str | None = None,
        start_row: str | None = None,
    ) -> str | None:
        """The ``Sforce-Enable-PKChunking`` value (``None`` when chunking is off)."""
        if pk_chunking is None or pk_chunking is False:
            if parent or start_row:
                raise ValueError("pk_parent and pk_start_row need pk_chunking")
            return None
        parts: list[str] = []
        if pk_chunking is True:
            parts.append("TRUE")
        else:
            size = int(pk_chunking)
            if not 1 <= size <= MAX_PK_CHUNK_SIZE:
                raise ValueError(f"pk_chunking chunk size must be 1..{MAX_PK_CHUNK_SIZE}")
            parts.append(f"chunkSize={size}")
        if parent:
            parts.append(f"parent={parent}")
        if start_row:
            parts.append(f"startRow={start_row}")
        return "; ".join(parts)

    def create_job(
        self,
        object: str,
        operation: str,
        content_type: str = "CSV",
        external_id_field: str | None = None,
        concurrency_mode: str = "Parallel",
        pk_chunking: bool | int | None = None,
        pk_parent: str | None = None,
        pk_start_row: str | None = None,
        *,
        assignment_rule_id: str | None = None,
        body_format: str | None = None,
    ) -> JobInfo:
        """Create a job and register it as open.

        Args:
            object: sObject API name.
            operation: One of :data:`OPERATIONS`.
            content_type: ``CSV``, ``JSON``, ``XML`` or ``ZIP_CSV``/``ZIP_JSON``/``ZIP_XML``.
            external_id_field: Required for upsert (``Id`` allowed), refused otherwise.
            concurrency_mode: ``Parallel`` or ``Serial`` (for loads that lock shared parents).
            pk_chunking: ``True`` (default chunk size), a chunk size, or None/False.
            pk_parent: Parent object for chunking Share/History objects.
            pk_start_row: Id from which the first chunk starts (to resume).
            assignment_rule_id: Case/Lead assignment rule.
            body_format: ``XML`` or ``JSON`` request body; defaults to JSON for JSON jobs.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"content_type must be one of {', '.join(CONTENT_TYPES)}")
        if (operation == "upsert") != bool(external_id_field):
            raise ValueError("external_id_field is required for upsert and only for upsert")
        if concurrency_mode not in ("Parallel", "Serial"):
            raise ValueError("concurrency_mode must be Parallel or Serial")
        if pk_chunking and operation not in ("query", "queryAll"):
            raise ValueError("PK chunking applies to query jobs only")
        header = self.pk_chunking_header(pk_chunking, pk_parent, pk_start_row)
        fmt = body_format or ("JSON" if content_type in ("JSON", "ZIP_JSON") else "XML")
        fields: list[tuple[str, str]] = [("operation", operation), ("object", object)]
        if external_id_field:
            fields.append(("externalIdFieldName", external_id_field))
        fields += [("concurrencyMode", concurrency_mode), ("contentType", content_type)]
        if assignment_rule_id:
            fields.append(("assignmentRuleId", assignment_rule_id))
        headers: dict[str, str] = {}
        if header:
            headers["Sforce-Enable-PKChunking"] = header
        if fmt == "JSON":
            data = json.dumps(dict(fields)).encode("utf-8")
            headers["Content-Type"] = "application/json"
        else:
            inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields)
            data = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f'<jobInfo xmlns="{ASYNC_NS}">{inner}</jobInfo>'
            ).encode()
            headers["Content-Type"] = "application/xml; charset=UTF-8"
        response = self.client.bulk1("POST", "/job", data=data, headers=headers)
        job = JobInfo.parse(response.content)
        self._content_types[job.id] = content_type
        self.client.open_jobs.register(job.id, "Bulk 1.0", lambda: self.abort_job(job.id))
        logger.info(
            "Created Bulk 1.0 %s job %s on %s (%s%s)",
            operation,
            job.id,
            object,
            content_type,
            f", PK chunking {header}" if header else "",
        )
        return job

    def _set_state(self, job_id: str, state: str) -> JobInfo:
        content_type = self._content_types.get(job_id, "CSV")
        if content_type in ("JSON", "ZIP_JSON"):
            data = json.dumps({"state": state}).encode()
            ctype = "application/json"
        else:
            data = (
                f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{ASYNC_NS}">'
                f"<state>{state}</state></jobInfo>"
            ).encode()
            ctype = "application/xml; charset=UTF-8"
        try:
            response = self.client.bulk1(
                "POST", f"/job/{job_id}", data=data, headers={"Content-Type": ctype},
                idempotent=True,
            )
        except SalesforceError as exc:
            # A retry after a lost answer meets the state the first attempt already set:
            # Salesforce refuses it with InvalidJobState, yet the change took effect.
            if exc.code != "InvalidJobState":
                raise
            info = self.get_job(job_id)
            if info.state != state:
                raise
            logger.info("Bulk 1.0 job %s was already %s", job_id, state)
            self.client.open_jobs.unregister(job_id)
            return info
        self.client.open_jobs.unregister(job_id)
        return JobInfo.parse(response.content)

    def close_job(self, job: JobInfo | str) -> JobInfo:
        """Close a job: no more batches; queued batches still finish."""
        job_id = job if isinstance(job, str) else job.id
        info = self._set_state(job_id, "Closed")
        logger.info("Closed Bulk 1.0 job %s", job_id)
        return info

    def abort_job(self, job: JobInfo | str) -> JobInfo:
        """Abort a job: queued batches are not processed (in-progress ones finish)."""
        job_id = job if isinstance(job, str) else job.id
        info = self._set_state(job_id, "Aborted")
        logger.info("Aborted Bulk 1.0 job %s", job_id)
        return info

    def _abort_quietly(self, job_id: str, reason: BaseException | None) -> None:
        try:
            self.abort_job(job_id)
        except SalesforceError as exc:
            if exc.code == "InvalidJobState":
                self.client.open_jobs.unregister(job_id)  # already closed or aborted
            else:
                logger.error("Could not abort Bulk 1.0 job %s after %r: %s", job_id, reason, exc)

    def get_job(self, job: JobInfo | str) -> JobInfo:
        """Read a job's current state and counters."""
        job_id = job if isinstance(job, str) else job.id
        info = JobInfo.parse(self.client.bulk1("GET", f"/job/{job_id}").content)
        if info.content_type:
            self._content_types.setdefault(info.id, info.content_type)
        return info

    def _job_content_type(self, job: JobInfo | str) -> str:
        if isinstance(job, JobInfo) and job.content_type:
            return job.content_type
        job_id = job if isinstance(job, str) else job.id
        if job_id not in self._content_types:
            self.get_job(job_id)
        return self._content_types.get(job_id, "CSV")

    # ------------------------------------------------------------------------------ batches

    def add_batch(
        self,
        job: JobInfo | str,
        body: bytes | str | Iterable[bytes] | IO[bytes],
        content_type: str | None = None,
    ) -> BatchInfo:
        """Add a batch: records (CSV/JSON/XML), a ZIP (``zip/csv`` …) or a query's SOQL text.

        ``body`` may be bytes, text, a binary file or an iterable of byte chunks (spooled first,
        so a retry can resend it). ``content_type`` is the HTTP type; it defaults to the job's.
        """
        job_id = job if isinstance(job, str) else job.id
        ctype = content_type or CONTENT_TYPES[self._job_content_type(job)]
        data: bytes | IO[bytes]
        if isinstance(body, str):
            data = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif hasattr(body, "read"):
            data = body  # type: ignore[assignment]
        else:
            spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
            for chunk in body:  # type: ignore[union-attr]
                spool.write(chunk)
            spool.seek(0)
            data = spool  # type: ignore[assignment]
        response = self.client.bulk1(
            "POST",
            f"/job/{job_id}/batch",
            data=data,
            headers={"Content-Type": ctype},
            job_id=job_id,
        )
        batch = BatchInfo.parse(response.content)
        logger.debug("Added batch %s to Bulk 1.0 job %s", batch.id, job_id)
        return batch

    def add_zip_batch(
        self, job: JobInfo | str, request: bytes, files: Mapping[str, bytes]
    ) -> BatchInfo:
        """Add a binary-attachment batch built by :func:`build_zip_batch`."""
        kind = self._job_content_type(job)
        if not kind.startswith("ZIP_"):
            raise ValueError("ZIP batches need a ZIP_CSV, ZIP_JSON or ZIP_XML job")
        return self.add_batch(job, build_zip_batch(request, files), CONTENT_TYPES[kind])

    def get_batch(self, job: JobInfo | str, batch_id: str) -> BatchInfo:
        """Read one batch's state."""
        job_id = job if isinstance(job, str) else job.id
        return BatchInfo.parse(self.client.bulk1("GET", f"/job/{job_id}/batch/{batch_id}").content)

    def list_batches(self, job: JobInfo | str) -> list[BatchInfo]:
        """Read every batch of a job in one call (chunk batches of a PK-chunked query included)."""
        job_id = job if isinstance(job, str) else job.id
        return BatchInfo.parse_list(self.client.bulk1("GET", f"/job/{job_id}/batch").content)

    def wait_for_batches(
        self,
        job: JobInfo | str,
        batch_ids: Collection[str],
        timeout: float | None = None,
        *,
        raise_on_failure: bool = True,
        look_later: bool = False,
    ) -> list[BatchInfo]:
        """Poll until every batch in ``batch_ids`` is terminal; return them in that order
        (``look_later``: first wait one poll interval, for batches just added).

        Raises:
            JobFailedError: A batch ended Failed or NotProcessed (with ``raise_on_failure``),
                naming the batch and Salesforce's ``stateMessage``.
            JobTimeoutError: ``timeout`` passed first; the caller should abort the job.
        """
        job_id = job if isinstance(job, str) else job.id
        wanted = list(batch_ids)
        wait = self.job_wait(timeout, what=f"Bulk 1.0 job {job_id}", job_id=job_id)
        if look_later:
            wait.sleep()
        while True:
            infos = {b.id: b for b in self.list_batches(job_id)}
            missing = [b for b in wanted if b not in infos]
            if missing:
                raise SalesforceError(
                    f"batch {missing[0]} is not in the job's batch list", job_id=job_id
                )
            if raise_on_failure:
                for batch_id in wanted:
                    self._raise_if_failed(infos[batch_id])
            if all(infos[b].is_terminal for b in wanted):
                return [infos[b] for b in wanted]
            if wait.expired:
                pending = [b for b in wanted if not infos[b].is_terminal]
                raise JobTimeoutError(
                    f"{len(pending)} batch(es) still unfinished after {wait.limit:.0f} s: "
                    + ", ".join(pending[:5]),
                    job_id=job_id,
                    batch_id=pending[0],
                )
            wait.sleep()

    @staticmethod
    def _raise_if_failed(batch: BatchInfo) -> None:
        if batch.state == "Failed":
            raise JobFailedError(
                batch.state_message or "batch failed without a message",
                code="BatchFailed",
                job_id=batch.job_id,
                batch_id=batch.id,
            )
        if batch.not_processed:
            raise JobFailedError(
                batch.state_message or "batch was not processed (the job was aborted)",
                code="NotProcessed",
                job_id=batch.job_id,
                batch_id=batch.id,
            )

    # ------------------------------------------------------------------------------ results

    def batch_results(self, job: JobInfo | str, batch_id: str) -> list[RowResult]:
        """An ingest batch's per-row results, in the order the rows were sent."""
        job_id = job if isinstance(job, str) else job.id
        response = self.client.bulk1("GET", f"/job/{job_id}/batch/{batch_id}/result")
        return parse_batch_results(response.content, response.headers.get("Content-Type"))

    def query_result_ids(self, job: JobInfo | str, batch_id: str) -> list[str]:
        """The result file ids of a completed query batch (several for large results)."""
        job_id = job if isinstance(job, str) else job.id
        body = _parse_body(
            self.client.bulk1("GET", f"/job/{job_id}/batch/{batch_id}/result").content
        )
        if isinstance(body, list):
            return [str(item) for item in body]
        if isinstance(body, dict):
            items = body.get("result") or []
            return [str(i) for i in (items if isinstance(items, list) else [items])]
        return [(el.text or "").strip() for el in body if _local(el.tag) == "result"]

    def iter_query_result(
        self,
        job: JobInfo | str,
        batch_id: str,
        result_id: str,
        *,
        datetime_fields: Collection[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Stream one result file's rows (see :func:`iter_result_rows`).

        The file is downloaded whole into a spooled buffer first (restarted if the connection
        drops), then parsed row by row, so memory stays bounded and no row is yielded twice.
        """
        job_id = job if isinstance(job, str) else job.id
        content_type = self._job_content_type(job)
        with self.client.download(
            "GET", f"/job/{job_id}/batch/{batch_id}/result/{result_id}", kind="bulk1"
        ) as page:
            try:
                yield from iter_result_rows(
                    page.body, content_type, datetime_fields=datetime_fields
                )
            except (csv.Error, ValueError, safe_et.ParseError) as exc:
                raise SalesforceError(
                    f"result file {result_id} is not well-formed {content_type}: {exc}",
                    job_id=job_id,
                    batch_id=batch_id,
                ) from exc

    def iter_query_result_bytes(
        self, job: JobInfo | str, batch_id: str, result_id: str
    ) -> Iterator[bytes]:
        """Stream one result file's raw bytes (after a complete, restartable download)."""
        job_id = job if isinstance(job, str) else job.id
        with self.client.download(
            "GET", f"/job/{job_id}/batch/{batch_id}/result/{result_id}", kind="bulk1"
        ) as page:
            yield from iter(lambda: page.body.read(_CHUNK), b"")

    # ------------------------------------------------------------------------------ orchestration

    def query(
        self,
        object: str,
        soql: str,
        *,
        include_deleted: bool = False,
        pk_chunking: bool | int | None = None,
        pk_parent: str | None = None,
        pk_start_row: str | None = None,
        content_type: str = "CSV",
        timeout: float | None = None,
        datetime_fields: Collection[str] = (),
    ) -> QueryStream:
        """Run a query job and stream its rows, result file by result file.

        Use as ``with bulk.query(...) as rows: for row in rows: ...`` (or iterate directly).
        The job is created on first iteration; it is closed after the last row and aborted on
        any failure or early exit. With PK chunking the original batch (``NotProcessed``) is
        ignored and every chunk batch is read as soon as it completes; a failed chunk raises
        :class:`JobFailedError` with its ``stateMessage``. Each batch's row count is checked
        against its ``numberRecordsProcessed`` (:class:`RecordCountMismatchError`).
        """
        if content_type not in ("CSV", "JSON", "XML"):
            raise ValueError("query content_type must be CSV, JSON or XML")
        return QueryStream(
            lambda stream: self._run_query(
                stream,
                object,
                soql,
                include_deleted=include_deleted,
                pk_chunking=pk_chunking,
                pk_parent=pk_parent,
                pk_start_row=pk_start_row,
                content_type=content_type,
                timeout=timeout,
                datetime_fields=datetime_fields,
            ),
        )

    def _run_query(
        self,
        stream: QueryStream,
        object: str,
        soql: str,
        *,
        include_deleted: bool,
        pk_chunking: bool | int | None,
        pk_parent: str | None,
        pk_start_row: str | None,
        content_type: str,
        timeout: float | None,
        datetime_fields: Collection[str],
    ) -> Iterator[dict[str, Any]]:
        self.client.check_api_budget()
        job = self.create_job(
            object,
            "queryAll" if include_deleted else "query",
            content_type,
            pk_chunking=pk_chunking,
            pk_parent=pk_parent,
            pk_start_row=pk_start_row,
        )
        stream.job = job
        finished = False
        try:
            original = self.add_batch(job, soql.encode("utf-8"))
            for batch in self._completed_batches(job, original.id, bool(pk_chunking), timeout):
                count = 0
                for result_id in self.query_result_ids(job, batch.id):
                    for row in self.iter_query_result(
                        job, batch.id, result_id, datetime_fields=datetime_fields
                    ):
                        count += 1
                        stream.rows_read += 1
                        yield row
                stream.batches_read += 1
                if count != batch.number_records_processed:
                    raise RecordCountMismatchError(
                        f"read {count} rows but Salesforce reported "
                        f"{batch.number_records_processed} for the batch",
                        expected=batch.number_records_processed,
                        actual=count,
                        job_id=job.id,
                        batch_id=batch.id,
                    )
            finished = True
        except BaseException as exc:
            self._abort_quietly(job.id, exc)
            raise
        if finished:
            stream.job = self.close_job(job.id)

    def _completed_batches(
        self, job: JobInfo, original_id: str, chunked: bool, timeout: float | None
    ) -> Iterator[BatchInfo]:
        """Yield the batches holding results as each completes (chunks, or the one batch)."""
        wait = self.job_wait(timeout, what=f"Bulk 1.0 job {job.id}", job_id=job.id)
        done: set[str] = set()
        blind_polls = 0
        while True:
            batches = self.list_batches(job.id)
            original = next((b for b in batches if b.id == original_id), None)
            if original is None:
                raise SalesforceError(
                    f"batch {original_id} is not in the job's batch list", job_id=job.id
                )
            if original.state == "Failed":
                self._raise_if_failed(original)
            if not chunked:
                if original.not_processed:
                    self._raise_if_failed(original)
                if original.state == "Completed":
                    yield original
                    return
            else:
                chunks = [b for b in batches if b.id != original_id]
                progressed = False
                for chunk in chunks:
                    if chunk.id in done:
                        continue
                    if chunk.state == "Failed" or chunk.not_processed:
                        self._raise_if_failed(chunk)
                    if chunk.state == "Completed":
                        done.add(chunk.id)
                        progressed = True
                        yield chunk
                if original.state == "Completed" and not chunks:
                    yield original  # the org processed the query without chunking it
                    return
                settled = original.not_processed or original.state == "Completed"
                if settled and all(c.id in done for c in chunks):
                    return
                if progressed:
                    continue  # reading took time: poll again at once
            if wait.expired:
                raise JobTimeoutError(
                    f"query results not ready after {wait.limit:.0f} s", job_id=job.id
                )
            if any(b.state == "Queued" for b in batches if b.id not in done):
                blind_polls = 0  # an abort would turn it NotProcessed: the list tells
            else:
                blind_polls += 1
                if blind_polls % self.JOB_CHECK_EVERY == 0:
                    self._raise_if_job_ended(job.id)
            wait.sleep()

    def _raise_if_job_ended(self, job_id: str) -> None:
        """Raise if the job was aborted (by anyone) or failed while its batches still run.

        Batches already running finish after an abort, and the batch list shows nothing until
        they do (only queued ones turn NotProcessed), so without this a query aborted from
        outside would only end at the job timeout.
        """
        info = self.get_job(job_id)
        if info.state in ("Aborted", "Failed"):
            raise JobFailedError(
                f"the query job was {info.state.lower()} while its batches ran "
                f"({info.number_batches_completed} of {info.number_batches_total} completed)",
                code=f"Job{info.state}",
                job_id=job_id,
            )

    def ingest(
        self,
        object: str,
        operation: str,
        batches: Iterable[bytes],
        *,
        content_type: str = "CSV",
        external_id_field: str | None = None,
        concurrency_mode: str = "Parallel",
        timeout: float | None = None,
    ) -> IngestOutcome:
        """Load records in batches and return each batch's per-row results in input order.

        The job is closed once every batch is added, then polled until all batches finish. A
        Failed batch is reported in its :class:`BatchOutcome` (``results`` None, the reason in
        ``batch.state_message``), not raised, so the caller can mark exactly those records.

        Raises:
            JobTimeoutError: Batches did not finish in time (the job is aborted first).
        """
        self.client.check_api_budget()
        job = self.create_job(
            object,
            operation,
            content_type,
            external_id_field=external_id_field,
            concurrency_mode=concurrency_mode,
        )
        try:
            added = [self.add_batch(job, body) for body in batches]
            closed = self.close_job(job.id)
            infos = self.wait_for_batches(
                job.id, [b.id for b in added], timeout, raise_on_failure=False, look_later=True
            )
        except BaseException as exc:
            self._abort_quietly(job.id, exc)
            raise
        outcome = IngestOutcome(job=closed)
        for info in infos:
            results = self.batch_results(job.id, info.id) if info.state == "Completed" else None
            outcome.batches.append(BatchOutcome(batch=info, results=results))
        outcome.job = self.get_job(job.id)
        return outcome


class QueryStream:
    """Rows of a Bulk query; iterable and a context manager that always ends the job.

    Shared by :meth:`Bulk1.query` and :meth:`sfbulk.bulk2.Bulk2.query`. The job is created on
    first iteration; leaving the ``with`` block (or :meth:`close`) before the last row aborts it.

    Attributes:
        job: The query job once created (its final state after the last row).
        rows_read: Rows yielded so far.
        batches_read: Result batches (1.0) or pages (2.0) fully read so far.
    """

    def __init__(self, run: Callable[[QueryStream], Iterator[dict[str, Any]]]) -> None:
        self.job: Any = None
        self.rows_read = 0
        self.batches_read = 0
        self._run = run
        self._rows: Iterator[dict[str, Any]] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._rows is None:
            self._rows = self._run(self)
        return self._rows

    def __next__(self) -> dict[str, Any]:
        return next(iter(self))

    def __enter__(self) -> QueryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading; an unfinished job is aborted."""
        if self._rows is not None:
            with contextlib.suppress(Exception):
                self._rows.close()  # type: ignore[attr-defined]
