"""One sink per stream: records become rows of one Salesforce object, loaded batch by batch.

The sink's contract with the SDK is what makes STATE trustworthy: ``process_batch`` returns only
when every record of the batch has a known outcome (loaded, failed, unprocessed or rejected), so
the STATE the SDK writes after a full drain never claims a record whose fate is unknown.

Per stream, decided once when the SCHEMA arrives (before any job): the object (the stream name,
or ``streams.<name>.object``, matched without regard to case), the operation (``action``), the
upsert key (validated against describe), and which declared fields load, are dropped, or stop
the run (:class:`~target_sfbulk.mapping.FieldMapper`). Per record: the record is mapped to
canonical columns when it arrives — a record that cannot be mapped fails alone, at once — and
is kept with its prepared row until the batch drains.

Records read from BATCH messages skip the SDK's validation and date parsing; so do RECORD
messages here (the SDK's date parsing is turned off): every value reaches
:mod:`sfbulk.csvcodec` as the JSON gave it and is checked there against the target field's type,
so both paths load identically and a bad value fails only its record.

A record whose ``_sdc_deleted_at`` is set is deleted (hardDelete when the ``hard_delete`` setting
is on) by its ``Id``, after the batch's other rows are loaded.
"""

from __future__ import annotations

import logging
import time
import typing as t
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from functools import cached_property
from itertools import chain
from typing import Any

from singer_sdk.sinks import BatchSink

from sfbulk.errors import ConfigError
from target_sfbulk.mapping import (
    DELETE_OPERATIONS,
    OPERATIONS,
    FieldMapper,
    Prepared,
    RecordRejected,
    choose_external_id,
)
from target_sfbulk.ordering import generations
from target_sfbulk.outcomes import REJECTED, Outcome

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_sfbulk.target import TargetSfBulk

logger = logging.getLogger(__name__)

#: Rough bytes of pending values after which a sink drains early, whatever its row count: keeps
#: memory bounded for wide records and every Bulk 2.0 job well under its 100 MB upload limit.
MAX_PENDING_BYTES = 64 * 1024 * 1024

_is_text = str.__instancecheck__
_monotonic = time.monotonic


def _held_bytes(records: Sequence[dict]) -> int:
    """Rough bytes the records hold: their text, and 8 for any other value (C loops)."""
    text = sum(map(len, filter(_is_text, chain.from_iterable(map(dict.values, records)))))
    return text + 8 * sum(map(len, records))

#: Singer metadata keys dropped from records (``_sdc_deleted_at`` is kept: it marks deletes).
_DROPPED_METADATA = frozenset({"_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at",
                               "_sdc_sequence", "_sdc_table_version", "_sdc_sync_started_at"})


class _Keys(t.NamedTuple):
    """The records a background load writes: the key column that names them (lower case) and
    their normalised values; no column for inserts, which write only new records."""

    column: str | None
    values: frozenset[Any]

    def clashes(self, other: _Keys) -> bool:
        """Whether two loads may write the same record: never with an insert; by shared values
        when both name records by the same column; always when the columns differ (an
        upsert by external id and a delete by Id can name one record by different keys)."""
        if self.column is None or other.column is None:
            return False
        return self.column != other.column or not self.values.isdisjoint(other.values)


class SalesforceSink(BatchSink):
    """Loads one stream into one Salesforce object."""

    #: Records per SDK batch: one Bulk job (Bulk 1.0: one batch of the 10,000-row maximum).
    #: ``batch_size_rows`` overrides it (the SDK reads it through ``max_size``).
    MAX_SIZE_DEFAULT = 10_000

    def __init__(self, target: Target, stream_name: str, schema: dict,
                 key_properties: Sequence[str] | None) -> None:
        self._sf_target = t.cast("TargetSfBulk", target)
        super().__init__(target, stream_name, schema, key_properties)
        self._pending_bytes = 0
        self._full_at: int | None = None
        #: RECORDs taken by :meth:`take` since the last :meth:`catch_up` (see there).
        self._held: list[dict] = []
        self._take_step = 1
        self._take_due = 0.0
        self._bytes_per_record = 1
        #: The reader's ``taken_chars`` when this sink last caught up (see :meth:`catch_up`).
        self._chars_mark: int = getattr(target.message_reader, "taken_chars", 0)
        #: Background loads of this stream still running: (future, keys they write).
        self._loads: deque[tuple[Future[None], _Keys]] = deque()
        self._warned_versions = False
        self.object_name = stream_name
        self.references: set[str] = set()

    # -- SDK hooks that do not fit -----------------------------------------------------------------

    @cached_property
    def validate_schema(self) -> bool:
        """JSON-schema validation is off unless ``validate_records`` is set: every value is
        checked against the Salesforce field it loads into, and a bad one fails only its record
        (the SDK's validator would stop the run); it is also most of the SDK's per-record cost."""
        return bool(self.config.get("validate_records", False))

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment: t.Any) -> None:
        """Leave date strings as they are: the encoder parses them by the target field's type,
        with the ``timezone`` setting for values without an offset, and rejects bad ones per
        record (the SDK would stop the run, and BATCH records never get this parsing)."""

    def _remove_sdc_metadata_from_record(self, record: dict) -> None:
        """Drop Singer metadata but keep ``_sdc_deleted_at``: it decides whether to delete."""
        if _DROPPED_METADATA.isdisjoint(record):  # the usual case: one scan, nothing to drop
            return
        for key in _DROPPED_METADATA:
            record.pop(key, None)

    def takes_plain_records(self) -> bool:
        """Whether RECORD messages of this stream need nothing from the SDK before
        :meth:`process_record` but dropping metadata (see :meth:`take`):
        no validation, no date parsing, no metadata columns added, no ``preprocess_record``."""
        cls = type(self)
        return (self._validator is None and not self.include_sdc_metadata_properties
                and cls._parse_timestamps_in_record is SalesforceSink._parse_timestamps_in_record
                and cls._validate_and_parse is BatchSink._validate_and_parse
                and cls.preprocess_record is BatchSink.preprocess_record)

    @property
    def is_full(self) -> bool:
        # The SDK's test (records read against max_size) with max_size read once per sink.
        full_at = self._full_at
        if full_at is None:
            full_at = self._full_at = self.max_size
        return self.current_size >= full_at or self._pending_bytes >= MAX_PENDING_BYTES

    # -- setup: everything that can stop the run happens here, before any job --------------------

    def setup(self) -> None:
        """Resolve the object, operation and upsert key, and check the SCHEMA's fields."""
        super().setup()
        target = self._sf_target
        describer, self.loader = target.salesforce()
        overrides = self._overrides()
        wanted = overrides.get("object") or self.stream_name
        entry = describer.global_entry(wanted)
        if entry is None:
            hint = "" if overrides.get("object") else \
                f" (set streams.{self.stream_name}.object to the object's API name)"
            raise ConfigError(f"stream {self.stream_name}: the org has no object {wanted!r}{hint}")
        self.object_name = entry["name"]
        describe = describer.describe(self.object_name)
        operation = overrides.get("action") or self.config.get("action") or "insert"
        if operation not in OPERATIONS:
            raise ConfigError(f"stream {self.stream_name}: action must be one of "
                              f"{', '.join(OPERATIONS)}")
        self.operation = operation
        renames = overrides.get("field_renames") or {}
        self.external_id_field: str | None = None
        if operation == "upsert":
            self.external_id_field = choose_external_id(
                self.stream_name, describe,
                overrides.get("external_id_field") or self.config.get("external_id_field"),
                self.key_properties, renames)
        self.mapper = FieldMapper(
            self.stream_name, describe, operation, describer.parent_describe,
            external_id_field=self.external_id_field, renames=renames,
            exclude=overrides.get("exclude_fields") or (),
            unknown_fields=str(self.config.get("unknown_fields") or "reject"),
            null_handling=str(self.config.get("null_handling") or "clear"),
        )
        report = self.mapper.check_schema(self.schema.get("properties") or {})
        self.references = self._referenced_objects(describe, report.loaded.values())
        self.delete_operation = "hardDelete" if self.config.get("hard_delete") else "delete"
        self._tally = target.tally.stream(self.stream_name)
        self.logger.info(
            "Stream %s → %s (%s%s): %d field(s) loaded%s", self.stream_name, self.object_name,
            operation, f" by {self.external_id_field}" if self.external_id_field else "",
            len(report.loaded),
            f", {len(report.excluded)} excluded" if report.excluded else "")

    def _overrides(self) -> Mapping[str, Any]:
        streams = self.config.get("streams") or {}
        if self.stream_name in streams:
            return streams[self.stream_name] or {}
        folded = self.stream_name.lower()
        for name, value in streams.items():
            if name.lower() == folded:
                return value or {}
        return {}

    @staticmethod
    def _referenced_objects(describe: Mapping[str, Any], columns: t.Iterable[str]) -> set[str]:
        """Objects the loaded columns point at: lookups by Id and relationship columns."""
        fields = {f["name"]: f for f in describe.get("fields", ())}
        by_relationship = {(f.get("relationshipName") or "").lower(): f
                           for f in describe.get("fields", ()) if f.get("type") == "reference"}
        out: set[str] = set()
        for column in columns:
            if "." in column:
                prefix, _, path = column.rpartition(":")
                if prefix:
                    out.add(prefix)
                    continue
                reference = by_relationship.get(path.partition(".")[0].lower())
            else:
                reference = fields.get(column)
            if reference is not None and reference.get("type") == "reference":
                out.update(reference.get("referenceTo") or ())
        return out

    # -- records -----------------------------------------------------------------------------------

    def process_record(self, record: dict, context: dict) -> None:
        """Keep the record until the batch drains; the whole batch is mapped then."""
        # Counted without the tally's lock: only this sink's own thread touches its counts.
        self._tally.received += 1
        rows = context.get("rows")
        if rows is None:
            rows = context["rows"] = []
        rows.append(record)
        self._pending_bytes += _held_bytes((record,))

    def take(self, record: dict) -> None:
        """Take one RECORD of a stream that needs nothing from the SDK per record (see
        ``TargetSfBulk._plain_sink``), with the least work per record.

        The record is held; every ``_take_step`` records, or once a second, :meth:`catch_up`
        does for all of them at once what the SDK does per record (batch context, counts, the
        record metric), then the sink drains if full and the record-age check runs. The step
        never passes the row that fills the batch, so ``batch_size_rows`` holds exactly, and
        it shrinks for wide records so pending bytes stay bounded. Anything that reads a
        sink's state first catches it up (``TargetSfBulk.settle``).
        """
        if not _DROPPED_METADATA.isdisjoint(record):
            self._remove_sdc_metadata_from_record(record)
        if self.key_properties:
            self._singer_validate_message(record)
        held = self._held
        held.append(record)
        if len(held) >= self._take_step or _monotonic() >= self._take_due:
            self._after_taking()

    def _after_taking(self) -> None:
        """:meth:`take`'s periodic step: catch up, drain when full, check record age."""
        self.catch_up()
        target = self._sf_target
        if self.is_full:
            target.logger.info("Target sink for '%s' is full. Current size is '%s'. "
                               "Draining...", self.stream_name, self.current_size)
            target.drain_one(self)
            target.check_failures()
        target._handle_max_record_age()
        # Next step: before the row that fills the batch, within about a MB of pending bytes,
        # after at most 1,000 records, or in a second.
        full_at = self._full_at if self._full_at is not None else self.max_size
        self._take_step = max(1, min(1000, full_at - self.current_size,
                                     (1 << 20) // self._bytes_per_record))
        self._take_due = _monotonic() + 1.0

    def catch_up(self) -> None:
        """Account for the records :meth:`take` holds: into the batch, counted, measured."""
        held = self._held
        count = len(held)
        if not count:
            return
        context = self._get_context(held[0])
        rows = context.get("rows")
        if rows is None:
            context["rows"] = rows = []
        rows.extend(held)
        self._held = []
        # Fewer rows left before the one that fills the batch: when a STATE or another
        # message caught this sink up (not _after_taking, which sets the next step), the
        # next step must still stop there.
        self._take_step = max(1, self._take_step - count)
        self._tally.received += count
        self.tally_record_read(count)
        self.record_counter_metric.increment(count)
        # What the records hold, estimated by the length of the lines they came on (counted
        # by the reader, so lines of other streams read meanwhile count too: an overestimate).
        chars = self._sf_target.message_reader.taken_chars  # type: ignore[attr-defined]
        added = chars - self._chars_mark
        self._chars_mark = chars
        if added <= 0:  # records not handed over by the reader (tests, the first record)
            added = _held_bytes(held)
        self._pending_bytes += added
        self._bytes_per_record = max(added // count, 1)
        if self.logger.isEnabledFor(logging.DEBUG):
            for _ in range(count):
                self._after_process_record(context)

    def _prepare_all(self, records: list[dict],
                     ) -> tuple[list[dict], list[Mapping[str, Any]], set[int]]:
        """Map a batch's records (:meth:`FieldMapper.prepare_many`): the records that can be
        loaded, their rows, and the positions (among them) of source deletes. A record that
        cannot be mapped fails alone, here, and is left out."""
        values, deleted = self.mapper.prepare_many(records)
        if not deleted and RecordRejected not in set(map(type, values)):
            return records, values, set()  # type: ignore[return-value]
        marked = set(deleted)
        kept: list[dict] = []
        rows: list[Mapping[str, Any]] = []
        deletes: set[int] = set()
        for position, (record, row) in enumerate(zip(records, values, strict=True)):
            if isinstance(row, RecordRejected):
                self._reject(record, row)
                continue
            if position in marked:
                if self.operation not in DELETE_OPERATIONS:
                    try:
                        row = self._as_delete(record).values
                    except RecordRejected as exc:
                        self._reject(record, exc)
                        continue
                deletes.add(len(rows))
            kept.append(record)
            rows.append(row)
        return kept, rows, deletes

    def _reject(self, record: Mapping[str, Any], exc: RecordRejected) -> None:
        self._sf_target.tally.record(
            self.stream_name, self.object_name, self.operation,
            Outcome(REJECTED, code=exc.code, message=exc.reason,
                    fields=(exc.field,) if exc.field else ()), record)

    def _as_delete(self, record: Mapping[str, Any]) -> Prepared:
        """A source delete (``_sdc_deleted_at``) in a stream that otherwise writes: its Id."""
        renames = {k.lower(): v for k, v in (self._overrides().get("field_renames") or {}).items()}
        for key, value in record.items():
            if renames.get(key.lower(), key).lower() == "id" and value:
                return Prepared({"Id": value}, deleted=True)
        raise RecordRejected(f"the record is marked deleted (_sdc_deleted_at) but has no Id, "
                             f"which {self.delete_operation} needs", "Id", "MISSING_KEY")

    def process_batch(self, context: dict) -> None:
        """Load the batch: its records are mapped here; the load runs here or, when it cannot
        clash with the stream's loads still running, in the background (see
        :meth:`_overlaps`). Every record has its outcome once :meth:`wait_loads` returns, and
        the target waits for it before any STATE."""
        target = self._sf_target
        target.drain_parents(self)
        self._collect_done_loads()
        records: list[dict] = context.get("rows") or []
        if "records" in context:  # a BATCH message's records
            target.tally.received(self.stream_name, len(context["records"]))
            for record in context["records"]:
                if self.include_sdc_metadata_properties is False:
                    self._remove_sdc_metadata_from_record(record)
            records = [*records, *context["records"]]
        self._pending_bytes = 0
        records, rows, deletes = self._prepare_all(records)
        if not rows:
            return
        groups: dict[str, list[int]] = {}
        if self.operation in DELETE_OPERATIONS or not deletes:
            groups[self.operation] = list(range(len(rows)))  # the usual case: one operation
        else:
            for index in range(len(rows)):
                operation = self.delete_operation if index in deletes else self.operation
                groups.setdefault(operation, []).append(index)
        # Writes first, then source deletes: a record written and deleted in one batch ends
        # deleted. Writes naming a parent among the batch's own rows wait for that parent.
        steps: list[tuple[str, list[int]]] = []
        links: list[tuple[str, str]] = []
        for operation in sorted(groups, key=lambda op: op in DELETE_OPERATIONS):
            indexes = groups[operation]
            links = self.mapper.self_links() if operation not in DELETE_OPERATIONS else []
            if not links:
                steps.append((operation, indexes))
                continue
            levels = generations([rows[i] for i in indexes], links, self.mapper.key_normaliser,
                                 self.mapper.key_column())
            if len(levels) > 1:
                self.logger.info("Stream %s → %s: %d generation(s) of records whose parent is "
                                 "in the same batch, loaded parents first", self.stream_name,
                                 self.object_name, len(levels))
            steps.extend((operation, [indexes[i] for i in level]) for level in levels)
        keys = self._overlaps(steps, rows, bool(links))
        if keys is None:
            self.wait_loads()
            self._load(steps, rows, records)
            return
        # Room for this load: at most max_parallel_jobs of the stream's loads at once, and
        # none that may write a record this batch writes.
        while self._loads and (len(self._loads) >= target.max_parallelism or any(
                keys.clashes(running) for _, running in self._loads)):
            self._loads[0][0].result()
            self._collect_done_loads()
        self._loads.append((target.load_pool.submit(self._load, steps, rows, records), keys))

    def _overlaps(self, steps: list[tuple[str, list[int]]], rows: Sequence[Mapping[str, Any]],
                  self_referencing: bool) -> _Keys | None:
        """The keys this batch writes when its load may run beside the stream's other loads
        (none for inserts, which clash with nothing), or ``None`` when it must run
        alone: one job at a time (``max_parallel_jobs`` 1, Serial mode), source deletes mixed
        in, rows naming parents of their own object (a later batch could name a row of this
        one), or a keyed operation whose rows lack their key."""
        target = self._sf_target
        if (target.max_parallelism < 2 or len(steps) != 1 or self_referencing
                or self.loader.settings.concurrency_mode == "Serial"):
            return None
        operation = steps[0][0]
        if operation == "insert":
            return _Keys(None, frozenset())
        column = self.external_id_field if operation == "upsert" else "Id"
        if not column:
            return None
        normal = self.mapper.key_normaliser(column)
        values = [row.get(column) for row in rows]
        if not values or None in values or "" in values:
            return None
        return _Keys(column.lower(), frozenset(map(normal, values)))

    def _collect_done_loads(self) -> None:
        """Forget finished background loads, oldest first, raising a load's error here."""
        loads = self._loads
        while loads and loads[0][0].done():
            try:
                future, _ = loads.popleft()
            except IndexError:  # another thread forgot it first
                return
            future.result()

    def wait_loads(self, *, raise_errors: bool = True) -> None:
        """Wait for every background load of this stream started so far, raising the first
        error (unless ``raise_errors`` is false: the run is already stopping for another
        reason, which a load's error must not replace). Safe from any thread: a load leaves
        the queue only once it is done, so no waiter returns while one it should wait for
        still runs."""
        if not raise_errors:
            for future, _ in list(self._loads):
                future.exception()  # waits; the error stays with the future
            return
        for future, _ in list(self._loads):
            future.result()
        self._collect_done_loads()

    def _load(self, steps: list[tuple[str, list[int]]], rows: list[Mapping[str, Any]],
              records: list[dict]) -> None:
        """Run a batch's loads, step by step, and count every record's outcome."""
        target = self._sf_target
        for operation, indexes in steps:
            whole = len(indexes) == len(rows)
            external_id = self.external_id_field if operation == "upsert" else None
            outcomes, report = self.loader.load(
                self.mapper, operation, rows if whole else [rows[i] for i in indexes],
                external_id)
            ok = target.tally.record_many(self.stream_name, self.object_name, operation,
                                          outcomes,
                                          records if whole else [records[i] for i in indexes])
            if report.collapsed:
                target.tally.collapsed(self.stream_name, report.collapsed)
                self.tally_duplicate_merged(report.collapsed)
            if report.lock_retried:
                target.tally.lock_retried(self.stream_name, report.lock_retried)
            self.logger.info(
                "Stream %s → %s %s: %d record(s), %d loaded, %d not loaded%s (jobs %s)",
                self.stream_name, self.object_name, operation, len(indexes), ok,
                len(indexes) - ok,
                f", {report.collapsed} duplicate key(s) collapsed" if report.collapsed else "",
                ", ".join(report.jobs) or "none")
        target.tally.flush()

    def process_batch_files(self, encoding: t.Any, files: Sequence[str]) -> None:
        """BATCH messages: load parents' pending records first, and this stream's own (they
        came before the files: a key's older value must not land last), then the files."""
        self._sf_target.drain_parents(self)
        self._sf_target.drain_one(self)
        super().process_batch_files(encoding, files)

    def activate_version(self, new_version: int) -> None:
        """Refuse ACTIVATE_VERSION clearly: Salesforce objects have no table versions, and
        deleting every row missing from a full-table sync is not something a load should do
        implicitly. The records themselves are loaded as usual."""
        if not self._warned_versions:
            self._warned_versions = True
            self.logger.warning(
                "ACTIVATE_VERSION %s for stream %s ignored: Salesforce objects have no versions, "
                "so records missing from this sync are not deleted from %s (send them with "
                "_sdc_deleted_at to delete them)", new_version, self.stream_name,
                self.object_name)
