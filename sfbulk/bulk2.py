"""Bulk API 2.0 client: streamed query jobs and single-upload ingest jobs.

Query: :meth:`Bulk2.query` creates the job, polls it with growing intervals, then streams the
results page by page, following ``Sforce-Locator`` until the literal ``null``. Every page carries
its own header row and is downloaded whole into a spooled buffer (restarted if the connection
drops) before its rows are yielded, so memory stays bounded and no row is yielded twice. Rows are
counted per page (``Sforce-NumberOfRecords``) and in total (``numberRecordsProcessed``).

Ingest: :meth:`Bulk2.ingest` creates the job, uploads the CSV in **one** ``PUT`` (Salesforce allows
one upload per job, at most about 100 MB of raw CSV: callers split larger loads into several
jobs), marks it ``UploadComplete``, polls until ``JobComplete``/``Failed``/``Aborted``, and returns
an :class:`IngestResults` from which ``successfulResults``, ``failedResults`` and
``unprocessedrecords`` are streamed and parsed.

Joining results to inputs: unlike Bulk 1.0, Bulk 2.0 does **not** return results in upload order.
Each result row echoes the uploaded columns (``sf__Id``, ``sf__Created`` or ``sf__Error`` first), so
the caller must upload a key column that identifies each input record and join on it:

- update, delete, hardDelete: the ``Id`` column;
- upsert: the external id column named by ``external_id_field``;
- insert: a unique text field the object has (an external id such as ``Source_Key__c``).

Join on a text column: Salesforce echoes *converted* values, so numbers may come back in another
notation (``912260031`` as ``9.12260031E8``). :meth:`IngestResults.by_key` builds the mapping.

Every job created is registered with the client's open-job registry until it reaches a terminal
state, and :meth:`Bulk2.query` / :meth:`Bulk2.ingest` abort their job on any failure, early close,
``KeyboardInterrupt`` or ``SystemExit``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, Any

# The job-record field readers are the same for both APIs' JSON.
from sfbulk.bulk1 import QueryStream, _api_version, _int
from sfbulk.csvcodec import NO_RECORDS_BODY, iter_csv_rows
from sfbulk.errors import (
    JobFailedError,
    JobTimeoutError,
    RecordCountMismatchError,
    SalesforceError,
)
from sfbulk.http import JobPolling

logger = logging.getLogger(__name__)

INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_TERMINAL = frozenset({"JobComplete", "Failed", "Aborted"})
INGEST_TERMINAL = frozenset({"JobComplete", "Failed", "Aborted"})
#: States an ingest job can only be in once its upload was marked complete.
_CLOSED_INGEST_STATES = frozenset({"UploadComplete", "InProgress", "JobComplete", "Failed"})
#: Raw CSV bytes one ingest job accepts (150 MB once base64-encoded by Salesforce).
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
_CHUNK = 256 * 1024
#: Rows of a result set handed over at a time by :meth:`IngestResults.pages`.
_PAGE_ROWS = 10_000
_LAST_PAGE = "null"
#: Result set names as :class:`IngestResults` calls them -> their resource names.
_RESULT_SETS = {"successful": "successfulResults", "failed": "failedResults",
                "unprocessed": "unprocessedrecords"}


def _job_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields query and ingest job records share, read from a Bulk 2.0 job JSON body."""
    return {
        "id": str(data.get("id") or ""),
        "operation": str(data.get("operation") or ""),
        "object": str(data.get("object") or ""),
        "state": str(data.get("state") or ""),
        "created_by_id": data.get("createdById"),
        "created_date": data.get("createdDate"),
        "system_modstamp": data.get("systemModstamp"),
        "concurrency_mode": data.get("concurrencyMode"),
        "content_type": data.get("contentType"),
        "api_version": _api_version(data.get("apiVersion")),
        "line_ending": data.get("lineEnding"),
        "column_delimiter": data.get("columnDelimiter"),
        "number_records_processed": _int(data.get("numberRecordsProcessed")),
        "retries": _int(data.get("retries")),
        "total_processing_time": _int(data.get("totalProcessingTime")),
        "error_message": data.get("errorMessage") or None,
    }


@dataclass(frozen=True)
class QueryJobInfo:
    """A Bulk 2.0 query job as Salesforce reports it."""

    id: str
    operation: str
    object: str
    state: str
    created_by_id: str | None = None
    created_date: str | None = None
    system_modstamp: str | None = None
    concurrency_mode: str | None = None
    content_type: str | None = None
    api_version: str | None = None
    line_ending: str | None = None
    column_delimiter: str | None = None
    number_records_processed: int = 0
    retries: int = 0
    total_processing_time: int = 0
    is_pk_chunking_supported: bool | None = None
    error_message: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryJobInfo:
        """Build from the job JSON (create, GET or PATCH response)."""
        return cls(
            **_job_fields(data),
            is_pk_chunking_supported=data.get("isPkChunkingSupported"),
        )

    @property
    def is_terminal(self) -> bool:
        """JobComplete, Failed or Aborted."""
        return self.state in QUERY_TERMINAL


@dataclass(frozen=True)
class IngestJobInfo:
    """A Bulk 2.0 ingest job as Salesforce reports it."""

    id: str
    operation: str
    object: str
    state: str
    external_id_field: str | None = None
    created_by_id: str | None = None
    created_date: str | None = None
    system_modstamp: str | None = None
    concurrency_mode: str | None = None
    content_type: str | None = None
    api_version: str | None = None
    content_url: str | None = None
    line_ending: str | None = None
    column_delimiter: str | None = None
    number_records_processed: int = 0
    number_records_failed: int = 0
    retries: int = 0
    total_processing_time: int = 0
    api_active_processing_time: int = 0
    apex_processing_time: int = 0
    error_message: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestJobInfo:
        """Build from the job JSON (create, GET or PATCH response)."""
        return cls(
            **_job_fields(data),
            external_id_field=data.get("externalIdFieldName"),
            content_url=data.get("contentUrl"),
            number_records_failed=_int(data.get("numberRecordsFailed")),
            api_active_processing_time=_int(data.get("apiActiveProcessingTime")),
            apex_processing_time=_int(data.get("apexProcessingTime")),
        )

    @property
    def is_terminal(self) -> bool:
        """JobComplete, Failed or Aborted."""
        return self.state in INGEST_TERMINAL


def _iter_pages(body: IO[bytes], rows: int = _PAGE_ROWS) -> Iterator[list[list[str]]]:
    """One CSV body as pages of cell lists: each page its header row followed by up to ``rows``
    rows, every row checked to be as wide as the header (a whole page at a time, by C loops).

    Nothing is yielded for an empty body; a body with only a header yields that header alone.

    Raises:
        SalesforceError: A row is not as wide as the header (the rows before it are yielded
            first, as row-by-row reading would).
    """
    text = None
    if isinstance(body, io.IOBase):
        # The reader straight over the file (what iter_csv_rows does, without a Python step
        # between the reader and the rows).
        text = io.TextIOWrapper(body, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
        first = text.readline()
        if not first or first.strip() == NO_RECORDS_BODY:
            text.detach()  # the body stays open: its owner closes it
            return
        cells: Iterator[list[str]] = filter(
            None, csv.reader(chain((first,), text), strict=True))
    else:
        cells = iter_csv_rows(iter(lambda: body.read(_CHUNK), b""))
    try:
        yield from _pages_of(cells, rows)
    finally:
        # Left early, the body may be closed already (and a closed wrapper cannot detach).
        if text is not None and not body.closed:
            text.detach()


def _pages_of(cells: Iterator[list[str]], rows: int) -> Iterator[list[list[str]]]:
    """:func:`_iter_pages` from rows of cells, its header first."""
    header = next(cells, None)
    if header is None:
        return
    width = len(header)
    first = True
    while True:
        page = [header]
        page.extend(islice(cells, rows))
        if len(page) == 1:
            if first:
                yield page
            return
        first = False
        if len(set(map(len, page))) != 1:
            bad = next(i for i, row in enumerate(page) if len(row) != width)
            if bad > 1:
                yield page[:bad]
            raise SalesforceError(
                f"a result row has {len(page[bad])} cells but the header has {width}")
        yield page


def _iter_cells(body: IO[bytes]) -> Iterator[list[str]]:
    """Rows of one CSV page as cell lists, its header first, every row as wide as the header.

    Nothing is yielded for an empty body (not even a header).
    """
    for number, page in enumerate(_iter_pages(body)):
        yield from (page if number == 0 else islice(page, 1, None))


def _iter_rows(body: IO[bytes]) -> Iterator[dict[str, str]]:
    """Rows of one CSV page as dicts by its own header (every page repeats the header)."""
    rows = _iter_cells(body)
    header = next(rows, None)
    if header is None:
        return
    for row in rows:
        yield dict(zip(header, row, strict=True))


class IngestResults:
    """A finished Bulk 2.0 ingest job and lazy access to its three result sets.

    Each ``successful()`` / ``failed()`` / ``unprocessed()`` call downloads that result CSV
    (restartable) and yields its rows as dicts: ``sf__Id``/``sf__Created`` or
    ``sf__Id``/``sf__Error`` followed by the uploaded columns as echoed by Salesforce.
    """

    def __init__(self, bulk: Bulk2, job: IngestJobInfo) -> None:
        self.bulk = bulk
        self.job = job

    def successful(self) -> Iterator[dict[str, str]]:
        """Rows Salesforce saved (``sf__Id``, ``sf__Created``, echoed columns)."""
        return self.bulk.iter_ingest_results(self.job.id, "successfulResults")

    def failed(self) -> Iterator[dict[str, str]]:
        """Rows Salesforce refused (``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``)."""
        return self.bulk.iter_ingest_results(self.job.id, "failedResults")

    def unprocessed(self) -> Iterator[dict[str, str]]:
        """Rows never processed (job aborted or failed), as uploaded."""
        return self.bulk.iter_ingest_results(self.job.id, "unprocessedrecords")

    def rows(self, which: str) -> Iterator[list[str]]:
        """One result set as cell lists, its header row first (nothing at all when empty).

        The same rows as :meth:`successful` / :meth:`failed` / :meth:`unprocessed` without a
        dict per row, for callers that join many rows by column position.

        Args:
            which: ``successful``, ``failed`` or ``unprocessed``.
        """
        return self.bulk.iter_ingest_result_rows(self.job.id, _RESULT_SETS.get(which, which))

    def pages(self, which: str, rows: int = _PAGE_ROWS) -> Iterator[list[list[str]]]:
        """One result set in pages of cell lists, each its header row followed by up to
        ``rows`` rows (nothing at all when the set is empty, the header alone when it has no
        rows).

        The same rows as :meth:`rows`, handed over a page at a time so that a caller joining
        many rows works on whole lists.

        Args:
            which: ``successful``, ``failed`` or ``unprocessed``.
            rows: The most rows a page holds.
        """
        return self.bulk.iter_ingest_result_pages(self.job.id, _RESULT_SETS.get(which, which),
                                                  rows)

    def by_key(self, key: str) -> dict[str, tuple[str, dict[str, str]]]:
        """Map each key column value to ``(outcome, row)``, outcome being ``success``,
        ``failed`` or ``unprocessed``; the way to join results back to inputs (see module doc).

        Raises:
            SalesforceError: The key column is not among the echoed columns, or a key repeats.
        """
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for outcome, rows in (
            ("success", self.successful()),
            ("failed", self.failed()),
            ("unprocessed", self.unprocessed()),
        ):
            for row in rows:
                if key not in row:
                    raise SalesforceError(
                        f"key column {key} is not among the result columns", job_id=self.job.id
                    )
                value = row[key]
                if value in out:
                    raise SalesforceError(
                        f"key {key}={value!r} appears more than once in the results",
                        job_id=self.job.id,
                    )
                out[value] = (outcome, row)
        return out


class Bulk2(JobPolling):
    """Bulk API 2.0 operations over one :class:`SalesforceClient`.

    Takes the client and poll settings of :class:`~sfbulk.http.JobPolling`
    (``job_timeout_seconds`` bounds the wait for one job).
    """

    # ------------------------------------------------------------------------------ query jobs

    def create_query_job(self, soql: str, include_deleted: bool = False) -> QueryJobInfo:
        """Create a query job (``queryAll`` with ``include_deleted``) and register it as open."""
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        job = QueryJobInfo.from_json(self.client.bulk2("POST", "/query", json_body=body).json())
        self.client.open_jobs.register(
            job.id, "Bulk 2.0 query", lambda: self.abort_query_job(job.id)
        )
        logger.info("Created Bulk 2.0 %s job %s on %s", job.operation, job.id, job.object)
        return job

    def get_query_job(self, job_id: str) -> QueryJobInfo:
        """Read a query job's state and counters."""
        return QueryJobInfo.from_json(self.client.bulk2("GET", f"/query/{job_id}").json())

    def abort_query_job(self, job_id: str) -> QueryJobInfo:
        """Abort a query job that has not finished."""
        response = self.client.bulk2("PATCH", f"/query/{job_id}", json_body={"state": "Aborted"})
        self.client.open_jobs.unregister(job_id)
        logger.info("Aborted Bulk 2.0 query job %s", job_id)
        return QueryJobInfo.from_json(response.json())

    def delete_query_job(self, job_id: str) -> None:
        """Delete a finished query job and its results."""
        self.client.bulk2("DELETE", f"/query/{job_id}")
        self.client.open_jobs.unregister(job_id)

    def wait_for_query_job(self, job_id: str, timeout: float | None = None) -> QueryJobInfo:
        """Poll until the query job is JobComplete.

        Raises:
            JobFailedError: The job ended Failed or Aborted (Salesforce's ``errorMessage``).
            JobTimeoutError: ``timeout`` passed first; the caller should abort the job.
        """
        info = self._wait(lambda: self.get_query_job(job_id), job_id, timeout, "query")
        assert isinstance(info, QueryJobInfo)
        return info

    def _wait(self, read: Any, job_id: str, timeout: float | None, kind: str, *,
              look_later: bool = False) -> Any:
        """Poll ``read`` until the job is terminal; with ``look_later``, the first look comes
        after the first interval (a job whose data was only just uploaded is never done)."""
        wait = self.job_wait(timeout, what=f"Bulk 2.0 {kind} job {job_id}", job_id=job_id)
        if look_later:
            wait.sleep()
        while True:
            info = read()
            if info.is_terminal:
                self.client.open_jobs.unregister(job_id)
                if info.state != "JobComplete":
                    raise JobFailedError(
                        info.error_message or f"the {kind} job ended {info.state}",
                        code=info.state,
                        job_id=job_id,
                    )
                return info
            if wait.expired:
                raise JobTimeoutError(
                    f"Bulk 2.0 {kind} job still {info.state} after {wait.limit:.0f} s",
                    job_id=job_id,
                )
            wait.sleep()

    def iter_query_pages(
        self, job_id: str, max_records: int | None = None
    ) -> Iterator[tuple[int, Iterator[dict[str, str]]]]:
        """Yield ``(page number, rows)`` for each results page, following the locator.

        Each page is fully downloaded (restartable) before its rows are handed out; rows are
        counted against the page's ``Sforce-NumberOfRecords``.
        """
        locator: str | None = None
        number = 0
        while True:
            params: dict[str, Any] = {}
            if max_records:
                params["maxRecords"] = max_records
            if locator:
                params["locator"] = locator
            page = self.client.download(
                "GET",
                f"/query/{job_id}/results",
                kind="bulk2",
                params=params,
                headers={"Accept": "text/csv"},
                job_id=job_id,
            )
            with page:
                number += 1
                declared = page.headers.get("Sforce-NumberOfRecords")
                count = 0

                def rows(body: IO[bytes] = page.body) -> Iterator[dict[str, str]]:
                    nonlocal count
                    for row in _iter_rows(body):
                        count += 1
                        yield row

                yield number, rows()
                if declared is not None and count != int(declared):
                    raise RecordCountMismatchError(
                        f"results page {number} held {count} rows but Sforce-NumberOfRecords "
                        f"said {declared}",
                        expected=int(declared),
                        actual=count,
                        job_id=job_id,
                    )
                locator = page.headers.get("Sforce-Locator")
            if not locator or locator == _LAST_PAGE:
                return

    def query(
        self,
        soql: str,
        include_deleted: bool = False,
        max_records: int | None = None,
        *,
        timeout: float | None = None,
    ) -> QueryStream:
        """Run a query job and stream its rows (cells as strings, keyed by the page header).

        Use as ``with bulk2.query(soql) as rows: for row in rows: ...``. ``max_records`` caps the
        rows per results page. The total read is checked against ``numberRecordsProcessed``
        (:class:`RecordCountMismatchError`). Leaving early or failing aborts an unfinished job.
        """
        return QueryStream(
            lambda stream: self._run_query(stream, soql, include_deleted, max_records, timeout)
        )

    def _run_query(
        self,
        stream: QueryStream,
        soql: str,
        include_deleted: bool,
        max_records: int | None,
        timeout: float | None,
    ) -> Iterator[dict[str, Any]]:
        self.client.check_api_budget()
        job = self.create_query_job(soql, include_deleted)
        stream.job = job
        try:
            done = self.wait_for_query_job(job.id, timeout)
            stream.job = done
            total = 0
            for _number, rows in self.iter_query_pages(job.id, max_records):
                for row in rows:
                    total += 1
                    stream.rows_read += 1
                    yield row
                stream.batches_read += 1
            if total != done.number_records_processed:
                raise RecordCountMismatchError(
                    f"read {total} rows but Salesforce reported {done.number_records_processed}",
                    expected=done.number_records_processed,
                    actual=total,
                    job_id=job.id,
                )
        except BaseException as exc:
            self._abort_quietly(job.id, "query", exc)
            raise

    def _abort_quietly(self, job_id: str, kind: str, reason: BaseException | None) -> None:
        if job_id not in self.client.open_jobs.ids():
            return  # already terminal
        try:
            if kind == "query":
                self.abort_query_job(job_id)
            else:
                self.abort_ingest_job(job_id)
        except SalesforceError as exc:
            if exc.code in ("INVALIDJOBSTATE", "InvalidJobState"):
                self.client.open_jobs.unregister(job_id)
            else:
                logger.error(
                    "Could not abort Bulk 2.0 %s job %s after %r: %s", kind, job_id, reason, exc
                )

    # ------------------------------------------------------------------------------ ingest jobs

    def create_ingest_job(
        self,
        object: str,
        operation: str,
        external_id_field: str | None = None,
        *,
        assignment_rule_id: str | None = None,
        line_ending: str = "LF",
    ) -> IngestJobInfo:
        """Create an ingest job (state Open) and register it as open."""
        if operation not in INGEST_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(INGEST_OPERATIONS)}")
        if (operation == "upsert") != bool(external_id_field):
            raise ValueError("external_id_field is required for upsert and only for upsert")
        body: dict[str, Any] = {
            "object": object,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": line_ending,
        }
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        if assignment_rule_id:
            body["assignmentRuleId"] = assignment_rule_id
        job = IngestJobInfo.from_json(self.client.bulk2("POST", "/ingest", json_body=body).json())
        self.client.open_jobs.register(
            job.id, "Bulk 2.0 ingest", lambda: self.abort_ingest_job(job.id)
        )
        logger.info("Created Bulk 2.0 %s job %s on %s", operation, job.id, object)
        return job

    def upload(self, job_id: str, data: bytes | IO[bytes]) -> None:
        """Upload the job's CSV in its single allowed ``PUT`` (at most :data:`MAX_UPLOAD_BYTES`)."""
        if isinstance(data, (bytes, bytearray)):
            size = len(data)
        else:
            position = data.tell()
            size = data.seek(0, os.SEEK_END) - position
            data.seek(position)
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(
                f"{size} bytes exceed the {MAX_UPLOAD_BYTES} bytes one Bulk 2.0 job accepts; "
                "split the records over several jobs"
            )
        self.client.bulk2(
            "PUT",
            f"/ingest/{job_id}/batches",
            data=data,
            headers={"Content-Type": "text/csv"},
            job_id=job_id,
        )

    def upload_complete(self, job_id: str) -> IngestJobInfo:
        """Mark the upload complete so Salesforce starts processing."""
        try:
            response = self.client.bulk2(
                "PATCH", f"/ingest/{job_id}", json_body={"state": "UploadComplete"}
            )
        except SalesforceError as exc:
            # The PATCH is retried when its answer is lost; the retry then finds the job already
            # past Open and is refused, though the first attempt did close it.
            if (exc.code or "").upper() != "INVALIDJOBSTATE":
                raise
            info = self.get_ingest_job(job_id)
            if info.state not in _CLOSED_INGEST_STATES:
                raise
            logger.info("Bulk 2.0 ingest job %s was already closed (%s)", job_id, info.state)
            return info
        return IngestJobInfo.from_json(response.json())

    def get_ingest_job(self, job_id: str) -> IngestJobInfo:
        """Read an ingest job's state and counters."""
        return IngestJobInfo.from_json(self.client.bulk2("GET", f"/ingest/{job_id}").json())

    def abort_ingest_job(self, job_id: str) -> IngestJobInfo:
        """Abort an ingest job (rows not yet processed stay unprocessed)."""
        response = self.client.bulk2("PATCH", f"/ingest/{job_id}", json_body={"state": "Aborted"})
        self.client.open_jobs.unregister(job_id)
        logger.info("Aborted Bulk 2.0 ingest job %s", job_id)
        return IngestJobInfo.from_json(response.json())

    def delete_ingest_job(self, job_id: str) -> None:
        """Delete a terminal ingest job and its results."""
        self.client.bulk2("DELETE", f"/ingest/{job_id}")
        self.client.open_jobs.unregister(job_id)

    def wait_for_ingest_job(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        raise_on_failure: bool = True,
        look_later: bool = False,
    ) -> IngestJobInfo:
        """Poll until the ingest job is JobComplete, Failed or Aborted (``look_later``: first
        wait one poll interval, for a job just closed).

        Raises:
            JobFailedError: Failed or Aborted (with ``raise_on_failure``), with ``errorMessage``.
            JobTimeoutError: ``timeout`` passed first; the caller should abort the job.
        """
        try:
            info = self._wait(lambda: self.get_ingest_job(job_id), job_id, timeout, "ingest",
                              look_later=look_later)
        except JobFailedError:
            if raise_on_failure:
                raise
            return self.get_ingest_job(job_id)
        assert isinstance(info, IngestJobInfo)
        return info

    def iter_ingest_results(self, job_id: str, which: str) -> Iterator[dict[str, str]]:
        """Stream one result set: ``successfulResults``, ``failedResults`` or
        ``unprocessedrecords``."""
        rows = self.iter_ingest_result_rows(job_id, which)
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            yield dict(zip(header, row, strict=True))

    def iter_ingest_result_rows(self, job_id: str, which: str) -> Iterator[list[str]]:
        """Stream one result set as cell lists, its header row first (see
        :meth:`iter_ingest_results`); every row is checked to be as wide as the header."""
        for number, page in enumerate(self.iter_ingest_result_pages(job_id, which)):
            yield from (page if number == 0 else islice(page, 1, None))

    def iter_ingest_result_pages(
        self, job_id: str, which: str, rows: int = _PAGE_ROWS
    ) -> Iterator[list[list[str]]]:
        """Stream one result set in pages of cell lists, each its header row followed by up to
        ``rows`` rows (see :meth:`IngestResults.pages`); every row is checked to be as wide as
        the header."""
        if which not in _RESULT_SETS.values():
            raise ValueError(f"unknown result set {which!r}")
        with self.client.download(
            "GET",
            f"/ingest/{job_id}/{which}/",
            kind="bulk2",
            headers={"Accept": "text/csv"},
            job_id=job_id,
        ) as page:
            yield from _iter_pages(page.body, rows)

    def ingest(
        self,
        object: str,
        operation: str,
        csv_bytes: bytes | IO[bytes],
        external_id_field: str | None = None,
        *,
        assignment_rule_id: str | None = None,
        timeout: float | None = None,
    ) -> IngestResults:
        """Load one CSV (header row first, ≤ :data:`MAX_UPLOAD_BYTES`) and wait for the outcome.

        Returns the finished job (``JobComplete``, or ``Failed`` with ``error_message``) with its
        result sets; row-level failures are in :meth:`IngestResults.failed`.

        Raises:
            JobTimeoutError: The job did not finish in time (it is aborted first).
        """
        self.client.check_api_budget()
        job = self.create_ingest_job(
            object, operation, external_id_field, assignment_rule_id=assignment_rule_id
        )
        try:
            self.upload(job.id, csv_bytes)
            self.upload_complete(job.id)
            done = self.wait_for_ingest_job(job.id, timeout, raise_on_failure=False,
                                            look_later=True)
        except BaseException as exc:
            self._abort_quietly(job.id, "ingest", exc)
            raise
        logger.info(
            "Bulk 2.0 %s job %s on %s: %s, %d processed, %d failed",
            operation,
            job.id,
            object,
            done.state,
            done.number_records_processed,
            done.number_records_failed,
        )
        return IngestResults(self, done)
