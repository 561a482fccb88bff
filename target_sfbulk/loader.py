"""Load one group of prepared records as Bulk jobs and return every record's outcome.

:meth:`Loader.load` is the unit a sink's ``process_batch`` waits on. Its steps:

1. **Collapse keys.** For update, upsert, delete and hardDelete, rows that share a key (``Id``,
   compared by its 18-character form, or the upsert key, compared as Salesforce compares it)
   become one row: later values win field by field, which is what applying the rows one after
   the other would leave, and the collapsed rows share the survivor's outcome. Two rows with one
   key in one job could otherwise race (Bulk 1.0 batches run in parallel) and would make the
   Bulk 2.0 results ambiguous. A row without its key is rejected.
2. **Encode and batch.** Values are encoded by :mod:`sfbulk.csvcodec` by the target field's type
   into batches within Salesforce's limits (Bulk 1.0: 10,000 rows and 10 MB per batch; Bulk 2.0:
   about 100 MB per job, so a large group becomes several jobs). Records with binary fields go in
   Bulk 1.0 ZIP batches. A record that cannot be encoded is rejected alone.
3. **Run the job** and wait for it, holding one of the target's job slots
   (``max_parallel_jobs``); Bulk 1.0 results are joined in order, Bulk 2.0 results through
   :class:`~target_sfbulk.outcomes.ResultJoiner`.
4. **Fall back to REST.** When Salesforce refuses the Bulk job because of the object itself
   (``INVALIDENTITY`` / ``InvalidEntity``: its "Allow Bulk API Access" is off) and
   ``rest_fallback`` is on, the rows go through sObject Collections instead, 200 per call,
   each record succeeding or failing alone as in a Bulk job; later groups of that object go
   there directly.
5. **Retry row locks.** Rows that failed with ``UNABLE_TO_LOCK_ROW`` are sent again, alone (a new
   job holding only them; Serial on Bulk 1.0), up to ``lock_retry_attempts`` times.

The return value has exactly one outcome per input row, or an exception is raised: a job whose
results cannot be joined leaves outcomes unknown, and the caller must not let STATE pass it.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, count, repeat
from operator import contains, not_
from pathlib import Path
from typing import Any

from sfbulk.bulk1 import Bulk1, IngestOutcome, RowResult
from sfbulk.bulk2 import MAX_UPLOAD_BYTES, Bulk2, IngestJobInfo
from sfbulk.csvcodec import NO_RECORDS_BODY, CsvBatcher, RejectedRecord, iter_csv_rows
from sfbulk.errors import SalesforceError
from sfbulk.rest import RestCollections, is_bulk_refusal
from target_sfbulk.mapping import FieldMapper
from target_sfbulk.outcomes import (
    FAILED,
    REJECTED,
    SUCCESS,
    UNPROCESSED,
    Outcome,
    ResultJoiner,
    join_in_order,
    parse_error_cell,
)
from target_sfbulk.payloads import Payload, StructuredBatcher, ZipBatcher, as_payload

logger = logging.getLogger(__name__)

LOCK_ERROR = "UNABLE_TO_LOCK_ROW"


@dataclass(frozen=True)
class LoadSettings:
    """How jobs are run (from the target's settings)."""

    bulk_api: str = "2.0"
    content_type: str = "CSV"
    concurrency_mode: str = "Parallel"
    lock_retry_attempts: int = 3
    lock_retry_wait: float = 2.0
    tz: dt.tzinfo | None = None
    binary_root: Path | None = None
    job_timeout: float | None = None
    max_batch_rows: int = 10_000
    max_batch_bytes: int = 10_000_000
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    rest_fallback: bool = True


@dataclass
class JobReport:
    """What one :meth:`Loader.load` did, for logs and counters."""

    jobs: list[str]
    collapsed: int = 0
    lock_retried: int = 0


class Loader:
    """Runs ingest jobs for sinks; shared by all sinks of a run (thread-safe).

    Args:
        bulk1: The Bulk 1.0 client.
        bulk2: The Bulk 2.0 client.
        settings: See :class:`LoadSettings`.
        job_slots: Bounds how many jobs run at once across all sinks.
    """

    def __init__(self, bulk1: Bulk1, bulk2: Bulk2, settings: LoadSettings,
                 job_slots: threading.BoundedSemaphore | None = None) -> None:
        self.bulk1 = bulk1
        self.bulk2 = bulk2
        self.settings = settings
        self._slots = job_slots or threading.BoundedSemaphore(4)
        self._sleep: Callable[[float], None] = time.sleep
        self._refused: set[str] = set()  # objects the Bulk API refused: loaded through REST
        self._refused_lock = threading.Lock()

    # -- entry point -----------------------------------------------------------------------------

    def load(self, mapper: FieldMapper, operation: str, rows: Sequence[Mapping[str, Any]],
             external_id_field: str | None = None) -> tuple[list[Outcome], JobReport]:
        """Load ``rows`` (canonical columns, as :meth:`FieldMapper.prepare` gives them).

        Returns:
            One :class:`Outcome` per row, in order, and a :class:`JobReport`.
        """
        report = JobReport(jobs=[])
        key_column = external_id_field if operation == "upsert" else (
            "Id" if operation in ("update", "delete", "hardDelete") else None)
        if key_column is None:
            # Inserts have nothing to collapse: every row is its own survivor. Rows are copied
            # only when binary content will rewrite them (ZIP batches name their files).
            sent = [dict(row) for row in rows] if mapper.binary_columns else list(rows)
            ran = self._run(mapper, operation, external_id_field, None, sent, report)
            if len(ran) != len(rows):  # pragma: no cover - a bug, never a Salesforce condition
                raise RuntimeError(f"{mapper.object}: {len(rows) - len(ran)} records were left "
                                   "without an outcome")
            return ran, report
        outcomes: list[Outcome | None] = [None] * len(rows)
        survivors, owner = self._collapse(mapper, rows, key_column, outcomes)
        report.collapsed = len(rows) - len(survivors) - sum(o is not None for o in outcomes)
        survivor_outcomes = self._run(mapper, operation, external_id_field, key_column, survivors,
                                      report)
        for index, survivor in owner.items():
            outcomes[index] = survivor_outcomes[survivor]
        missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if missing:  # pragma: no cover - a bug, never a Salesforce condition
            raise RuntimeError(f"{mapper.object}: {len(missing)} records were left without an "
                               "outcome")
        return [o for o in outcomes if o is not None], report

    def _collapse(self, mapper: FieldMapper, rows: Sequence[Mapping[str, Any]],
                  key_column: str | None, outcomes: list[Outcome | None],
                  ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """Merge rows sharing a key; reject rows without one. Returns survivors and, for each
        input row that is loaded, the index of the survivor that carries it."""
        survivors: list[dict[str, Any]] = []
        owner: dict[int, int] = {}
        if key_column is None:
            for index, row in enumerate(rows):
                owner[index] = len(survivors)
                survivors.append(dict(row))
            return survivors, owner
        normalise = mapper.key_normaliser(key_column)
        by_key: dict[Any, int] = {}
        for index, row in enumerate(rows):
            value = row.get(key_column)
            if value is None or value == "":
                outcomes[index] = Outcome(
                    REJECTED, code="MISSING_KEY",
                    message=f"{mapper.operation if key_column != 'Id' else 'this operation'} "
                            f"needs {mapper.object}.{key_column}, and the record has no value")
                continue
            key = normalise(value)
            survivor = by_key.get(key)
            if survivor is None:
                by_key[key] = survivor = len(survivors)
                survivors.append(dict(row))
            else:
                survivors[survivor].update(row)
            owner[index] = survivor
        return survivors, owner

    # -- jobs ------------------------------------------------------------------------------------

    def _run(self, mapper: FieldMapper, operation: str, external_id_field: str | None,
             key_column: str | None, rows: Sequence[Mapping[str, Any]],
             report: JobReport) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(rows)
        pending = list(range(len(rows)))
        attempt = 0
        serial = self.settings.concurrency_mode == "Serial"
        while pending:
            results = self._send(mapper, operation, external_id_field, key_column,
                                 [(i, rows[i]) for i in pending], serial, report)
            retry: list[int] = []
            for index, outcome in results.items():
                if (outcome.status == FAILED and outcome.code == LOCK_ERROR
                        and attempt < self.settings.lock_retry_attempts):
                    retry.append(index)
                else:
                    outcomes[index] = outcome
            if not retry:
                break
            attempt += 1
            report.lock_retried += len(retry)
            logger.info("%s: %d row(s) hit %s; sending them again alone (attempt %d of %d)",
                        mapper.object, len(retry), LOCK_ERROR, attempt,
                        self.settings.lock_retry_attempts)
            self._sleep(self.settings.lock_retry_wait * attempt)
            pending = sorted(retry)
            serial = True
        return [o for o in outcomes if o is not None]

    def _batches(self, mapper: FieldMapper, items: list[tuple[int, Mapping[str, Any]]],
                 binary: set[str], api: str) -> tuple[list[Payload], dict[int, Outcome]]:
        """Encode rows into payloads; returns the payloads and the rows rejected on the way."""
        rejected: dict[int, Outcome] = {}
        payloads: list[Payload] = []
        settings = self.settings
        if binary:
            zipper = ZipBatcher(mapper.column, binary, settings.content_type, tz=settings.tz,
                                root=settings.binary_root)
            produced: list[Any] = []
            for index, row in items:
                produced.extend(zipper.add(row, index))
            produced.extend(zipper.flush())
        elif api == "2.0" or settings.content_type == "CSV":
            # The whole group at once: the CSV batcher encodes runs of same-shaped rows together.
            if api == "2.0":
                batcher = CsvBatcher(mapper.column, tz=settings.tz, max_rows=10**9,
                                     max_bytes=settings.max_upload_bytes,
                                     max_chars=settings.max_upload_bytes)
            else:
                batcher = CsvBatcher(mapper.column, tz=settings.tz,
                                     max_rows=settings.max_batch_rows,
                                     max_bytes=settings.max_batch_bytes,
                                     max_chars=settings.max_batch_bytes)
            produced = list(batcher.batches(items, keyed=True))
        else:
            structured = StructuredBatcher(mapper.column, settings.content_type, tz=settings.tz,
                                           max_rows=settings.max_batch_rows,
                                           max_bytes=settings.max_batch_bytes)
            produced = []
            for index, row in items:
                result = structured.add(row, index)
                if result is not None:
                    produced.append(result)
            last = structured.flush()
            if last is not None:
                produced.append(last)
        for item in produced:
            if isinstance(item, RejectedRecord):
                field = f" ({item.field})" if item.field else ""
                rejected[item.key] = Outcome(REJECTED, code="INVALID_VALUE",
                                             message=f"{item.reason}{field}".strip(),
                                             fields=(item.field,) if item.field else ())
            elif isinstance(item, Payload):
                payloads.append(item)
            else:
                payloads.append(as_payload(item))
        return payloads, rejected

    def _send(self, mapper: FieldMapper, operation: str, external_id_field: str | None,
              key_column: str | None, items: list[tuple[int, Mapping[str, Any]]], serial: bool,
              report: JobReport) -> dict[int, Outcome]:
        binary = {c for _, row in items for c in row if c in mapper.binary_columns} \
            if mapper.binary_columns else set()
        if mapper.object in self._refused and not binary:
            return self._rest(mapper, operation, external_id_field, items, report)
        try:
            return self._send_bulk(mapper, operation, external_id_field, key_column, items,
                                   serial, report, binary)
        except SalesforceError as exc:
            if (not self.settings.rest_fallback or binary or not is_bulk_refusal(exc)
                    or operation not in RestCollections.OPERATIONS):
                raise
            with self._refused_lock:
                first = mapper.object not in self._refused
                self._refused.add(mapper.object)
            if first:
                logger.warning(
                    "%s: the Bulk API refuses this object (%s: %s), so its records are loaded "
                    "through the REST API (sObject Collections, 200 records per API call) "
                    "instead; turn rest_fallback off to fail instead",
                    mapper.object, exc.code, exc.message)
            return self._rest(mapper, operation, external_id_field, items, report)

    def _rest(self, mapper: FieldMapper, operation: str, external_id_field: str | None,
              items: list[tuple[int, Mapping[str, Any]]], report: JobReport) -> dict[int, Outcome]:
        """Load rows through sObject Collections; one outcome per row, joined in order.

        A value its field cannot take is rejected alone, before any call, as in the Bulk path.
        """
        collections = RestCollections(self.bulk2.client)
        types: dict[str, str] = {}
        results: dict[int, Outcome] = {}
        accepted: list[tuple[int, Mapping[str, Any]]] = []
        for index, row in items:
            for name in row:
                if name not in types:
                    column = mapper.column(name)
                    types[name] = column.field_type if column is not None else "string"
            try:
                collections.body_record(mapper.object, row, types, self.settings.tz)
            except ValueError as exc:
                results[index] = Outcome(REJECTED, code="INVALID_VALUE", message=str(exc))
                continue
            accepted.append((index, row))
        if not accepted:
            return results
        with self._slots:
            rows = collections.write(mapper.object, operation, [row for _, row in accepted],
                                     external_id_field, field_types=types, tz=self.settings.tz)
        report.jobs.append(f"REST ({collections.calls} calls)")
        joined = join_in_order(len(accepted), outcomes_from_rows(rows, None, None),
                               job_id=None, batch_id=None)
        results.update(zip((index for index, _ in accepted), joined, strict=True))
        return results

    def _send_bulk(self, mapper: FieldMapper, operation: str, external_id_field: str | None,
                   key_column: str | None, items: list[tuple[int, Mapping[str, Any]]],
                   serial: bool, report: JobReport, binary: set[str]) -> dict[int, Outcome]:
        api = "1.0" if binary else self.settings.bulk_api
        payloads, results = self._batches(mapper, items, binary, api)
        if not payloads:
            return results
        if api == "1.0":
            content_type = self.settings.content_type
            if binary:
                content_type = f"ZIP_{content_type}"
            outcome = self._bulk1(mapper.object, operation, external_id_field, payloads,
                                  content_type, "Serial" if serial else
                                  self.settings.concurrency_mode)
            report.jobs.append(outcome.job.id)
            for payload, batch in zip(payloads, outcome.batches, strict=True):
                info = batch.batch
                if batch.results is None:
                    status = UNPROCESSED if info.not_processed else FAILED
                    code, message, fields = _batch_failure(info.state_message, info.state)
                    for key in payload.keys:
                        results[key] = Outcome(status, None, None, code, message, fields,
                                               info.job_id or outcome.job.id, info.id)
                    continue
                joined = join_in_order(payload.rows,
                                       outcomes_from_rows(batch.results, outcome.job.id,
                                                          info.id),
                                       job_id=outcome.job.id, batch_id=info.id)
                results.update(zip(payload.keys, joined, strict=True))
            return results
        for payload in payloads:
            results.update(self._bulk2(mapper, operation, external_id_field, key_column, payload,
                                       report))
        return results

    def _bulk1(self, obj: str, operation: str, external_id_field: str | None,
               payloads: list[Payload], content_type: str, mode: str) -> IngestOutcome:
        with self._slots:
            return self.bulk1.ingest(obj, operation, [p.data for p in payloads],
                                     content_type=content_type,
                                     external_id_field=external_id_field,
                                     concurrency_mode=mode, timeout=self.settings.job_timeout)

    def _bulk2(self, mapper: FieldMapper, operation: str, external_id_field: str | None,
               key_column: str | None, payload: Payload, report: JobReport) -> dict[int, Outcome]:
        # The cells the batcher kept are the upload's rows; without them, it is read back.
        rows: list[list[str]] | None = None
        if payload.cells is not None:
            header = payload.columns
        else:
            cells = upload_cells(payload.data, payload.rows)
            header, rows = cells[0], cells[1:]
        types = {}
        for name in header:
            column = mapper.column(name)
            types[name] = column.field_type if column is not None else "string"
        fold = False
        if key_column is not None and key_column != "Id":
            described = mapper.field(key_column)
            fold = not (described or {}).get("caseSensitive", False)
        with self._slots:
            results = self.bulk2.ingest(mapper.object, operation, payload.data,
                                        external_id_field, timeout=self.settings.job_timeout)
            job = results.job
            report.jobs.append(job.id)
            joiner = ResultJoiner(header, rows, types, key_column=key_column,
                                  fold_key_case=fold, job_id=job.id, columns=payload.cells)
            if joiner.rows != payload.rows:
                raise SalesforceError(f"{mapper.object}: the upload holds {joiner.rows} rows but "
                                      f"{payload.rows} were batched", job_id=job.id)
            failed_job = None
            if job.state != "JobComplete":
                failed_job = f"job {job.state}: {job.error_message or 'no message'}"
                joiner.unprocessed_reason = failed_job
            for kind in _result_sets(job, payload.rows):
                for page in results.pages(kind):
                    joiner.add_page(kind, page)
        outcomes = joiner.finish(unprocessed_message=failed_job)
        return dict(zip(payload.keys, outcomes, strict=True))


def _result_sets(job: IngestJobInfo, rows: int) -> list[str]:
    """The result sets of a finished Bulk 2.0 job that may hold rows, to download.

    A ``JobComplete`` job's counts are final: no failed rows means an empty ``failedResults``,
    every uploaded row processed an empty ``unprocessedrecords``, every processed row failed an
    empty ``successfulResults``; each saves an API call. Any row the counts misstate is left
    without a result, which the join reports as an error.
    """
    if job.state != "JobComplete":
        return ["successful", "failed", "unprocessed"]
    processed, failed = job.number_records_processed, job.number_records_failed
    sets = []
    if failed < processed:
        sets.append("successful")
    if failed:
        sets.append("failed")
    if processed < rows:
        sets.append("unprocessed")
    return sets


def _from_row(row: RowResult, job_id: str | None, batch_id: str | None) -> Outcome:
    if row.success:
        return Outcome(SUCCESS, row.id, row.created, job_id=job_id, batch_id=batch_id)
    code, message, fields = parse_error_cell(row.error or "")
    return Outcome(FAILED, row.id, None, code, message, fields, job_id, batch_id)


def outcomes_from_rows(rows: Sequence[RowResult], job_id: str | None,
                       batch_id: str | None) -> list[Outcome]:
    """One :class:`Outcome` per row result, in order: what :func:`_from_row` gives each row.

    Every row is first made a success by C loops (``tuple.__new__`` over the transposed
    columns: one Outcome per record, so no Python call per row); the failed rows, usually few,
    are then made again by :func:`_from_row`, each distinct error text parsed once.
    """
    if not rows:
        return []
    ids, successes, created, _errors = zip(*rows, strict=True)
    outcomes = list(map(tuple.__new__, repeat(Outcome),
                        zip(repeat(SUCCESS), ids, created, repeat(None), repeat(None),
                            repeat(()), repeat(job_id), repeat(batch_id))))
    if all(successes):
        return outcomes
    failed = list(compress(count(), map(not_, successes)))
    parsed: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for index in failed:
        row = rows[index]
        error = row.error or ""
        found = parsed.get(error)
        if found is None:
            found = parsed[error] = parse_error_cell(error)
        outcomes[index] = tuple.__new__(Outcome, (FAILED, row.id, None, *found, job_id,
                                                  batch_id))
    return outcomes


def upload_cells(data: bytes, rows: int) -> list[list[str]]:
    """An upload read back as cell lists, its header first: what
    :func:`~sfbulk.csvcodec.iter_csv_rows` gives, more cheaply for the usual upload.

    When every record is one line (``rows`` records and a header, each ending with the only
    newlines, no carriage return), lines without a quote are split at their commas, which is
    all a CSV reader does with them, and only lines with a quote go through the CSV reader.
    Anything else is read by :func:`~sfbulk.csvcodec.iter_csv_rows` whole.

    Args:
        data: The uploaded CSV.
        rows: The records it holds (without the header).
    """
    text = data.decode("utf-8-sig")
    if "\r" not in text and text.count("\n") == rows + 1 and text.endswith("\n"):
        lines = text.split("\n")
        lines.pop()  # the empty string after the last newline
        if "" not in lines and lines[0].strip() != NO_RECORDS_BODY:
            quoted = list(map(contains, lines, repeat('"')))
            quotes = quoted.count(True)
            if not quotes:
                return list(map(str.split, lines, repeat(",")))
            if quotes * 2 > len(lines):  # mostly quoted: the reader takes every line
                parsed = list(csv.reader(lines, strict=True))
                if len(parsed) == len(lines):  # no quoted cell ran on past its line
                    return parsed
                return list(iter_csv_rows([data]))
            parsed = list(csv.reader(compress(lines, quoted), strict=True))
            if len(parsed) == quotes:  # no quoted cell ran on past its line
                plain = list(map(not_, quoted))
                cells: list[list[str]] = [[]] * len(lines)
                deque(map(cells.__setitem__, compress(count(), quoted), parsed), maxlen=0)
                deque(map(cells.__setitem__, compress(count(), plain),
                          map(str.split, compress(lines, plain), repeat(","))), maxlen=0)
                return cells
    return list(iter_csv_rows([data]))


def _batch_failure(message: str | None, state: str) -> tuple[str, str, tuple[str, ...]]:
    """Code and message for every row of a batch that failed or was not processed as a whole."""
    text = message or f"batch {state}"
    code = text.split(":", 1)[0].strip() if ":" in text else state
    if not code.replace("_", "").isalnum():
        code = state
    return code, text, ()
