"""One stream per sObject: SOQL from the catalog, a Bulk query job, typed records as they arrive.

Why the stream looks the way it does:

- **Unsorted results, maximum bookmark.** Bulk results are unordered (and sorting would defeat
  PK chunking), so :attr:`SObjectStream.is_sorted` is ``False``. The SDK then keeps the maximum
  replication-key value seen in ``progress_markers`` and promotes it to the bookmark only when
  the stream finishes, capped by the signpost. An interrupted run therefore leaves the old
  bookmark in place (nothing unseen is skipped) and a run that reads no row leaves it unchanged.
- **A fixed window.** An incremental query reads ``key >= bookmark - lookback_seconds AND key <
  upper bound``; the upper bound is fixed when the run starts (a few seconds in the past, so rows
  still committing are left for the next run) and is also the signpost.
- **Streaming.** Rows are typed by :class:`sfbulk.csvcodec.RecordTyper` page by page as the shared
  layer downloads them; nothing holds a whole result set, so memory stays flat for any table.
- **Exact values.** Numbers come out as :class:`~decimal.Decimal` (``int`` for integers) and are
  written digit for digit; the SDK's type conformance is switched off because the typer already
  yields JSON-ready values and it would only cost time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from singer_sdk import Stream
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.catalog import Metadata, MetadataMapping
from singer_sdk.singerlib.encoding.simple import RecordMessage

from sfbulk.csvcodec import RecordTyper
from sfbulk.errors import ConfigError
from sfbulk.soql import Condition, build_select, check_identifier
from tap_sfbulk.discovery import StreamSpec
from tap_sfbulk.fallback import with_rest_fallback

if TYPE_CHECKING:
    from sfbulk.http import SalesforceClient
    from tap_sfbulk.prefetch import Prefetch
    from tap_sfbulk.tap import TapSfBulk

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
#: Rows asked per Bulk 2.0 results page (``maxRecords``): two calls per million rows at most.
DEFAULT_BULK2_PAGE_SIZE = 500_000


@dataclass(slots=True)
class UnsupportedFieldMetadata(Metadata):
    """Property metadata that also says why a field cannot be selected."""

    unsupported_reason: str | None = None


@dataclass(frozen=True)
class PreparedQuery:
    """The columns and SOQL of one stream's run."""

    columns: list[str]
    soql: str


@dataclass
class StreamStats:
    """What one stream's sync cost, for the run summary."""

    records: int = 0
    jobs: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    status: str = "not run"
    error: str | None = None
    job_ids: list[str] = field(default_factory=list)


def _as_cell(value: Any) -> str:
    """A JSON (or XML) result value as the CSV cell Salesforce would have written."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_bookmark(value: dt.datetime) -> str:
    """A datetime in the form the typer gives replication keys: ``…:SS.ffffff+00:00`` (UTC).

    Fixed width, so bookmarks and signposts compare correctly as strings.
    """
    return value.astimezone(UTC).isoformat("T", timespec="microseconds")


def parse_bookmark(value: str) -> dt.datetime:
    """Read a bookmark or ``start_date`` (ISO 8601; naive values are UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class SObjectStream(Stream):
    """Records of one Salesforce object read through the Bulk API.

    Args:
        tap: The tap (gives the connection, the run's upper bound and the settings).
        spec: What describe said about the object (schema, unsupported fields, keys).
    """

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    #: Records per chunk handed from the download thread to the writer.
    PREFETCH_CHUNK = 500

    def __init__(self, tap: TapSfBulk, spec: StreamSpec) -> None:
        self.spec = spec
        super().__init__(tap, schema=spec.schema, name=spec.name)
        self.primary_keys = ["Id"]
        self.replication_key = spec.replication_key
        self.stats = StreamStats()
        self.prefetch: Prefetch | None = None
        self._metadata_marked = False
        self._client: SalesforceClient | None = None

    @property
    def tap(self) -> TapSfBulk:
        """The tap this stream belongs to."""
        return self._tap  # type: ignore[return-value]

    # -- catalog ------------------------------------------------------------------------------

    @property
    def is_sorted(self) -> bool:
        """Bulk results are unordered: the bookmark is the maximum seen, kept until the end."""
        return False

    @property
    def metadata(self) -> MetadataMapping:
        """Standard metadata, with unreadable fields marked ``unsupported`` and the reason."""
        mapping = super().metadata
        if not self._metadata_marked:
            self._metadata_marked = True
            for name, reason in self.spec.unsupported.items():
                mapping[("properties", name)] = UnsupportedFieldMetadata(
                    inclusion=Metadata.InclusionType.UNSUPPORTED,
                    selected=False,
                    unsupported_reason=reason,
                )
            self._mask = None
        return mapping

    def selected_columns(self) -> list[str]:
        """Columns to query: selected, readable, and present in the catalog's schema.

        ``Id`` and the replication key are always included (automatic). A field the org has
        but the given catalog lacks (added since discovery) is not read: the catalog decides.
        """
        catalog_properties = self.effective_schema.get("properties", {})
        mask = self.mask
        columns: list[str] = []
        for name in self.schema["properties"]:
            if name in self.spec.unsupported or name not in catalog_properties:
                continue
            if name in ("Id", self.replication_key) or mask[("properties", name)]:
                columns.append(name)
        if "Id" not in columns:
            columns.insert(0, "Id")
        return columns

    # -- the query ----------------------------------------------------------------------------

    def get_replication_key_signpost(self, context: Mapping[str, Any] | None = None) -> str | None:
        """The run's upper bound: no bookmark may pass it (rows above it belong to the next run)."""
        if not self.replication_key:
            return None
        return format_bookmark(self.tap.upper_bound)

    def window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """``(lower, upper)`` bounds of the replication key for this run; ``(None, None)``
        for a full-table stream.

        The lower bound is the saved bookmark minus ``lookback_seconds`` (never below
        ``start_date``), else ``start_date``, else none (all history).
        """
        if self.replication_method != "INCREMENTAL" or not self.replication_key:
            return None, None
        lower: dt.datetime | None = None
        state = self.tap.state.get("bookmarks", {}).get(self.name, {})
        saved = state.get("replication_key_value")
        if saved and state.get("replication_key") == self.replication_key:
            lookback = dt.timedelta(seconds=float(self.config.get("lookback_seconds") or 0))
            lower = parse_bookmark(str(saved)) - lookback
        start = self.config.get("start_date")
        if start:
            start_value = parse_bookmark(str(start))
            lower = start_value if lower is None else max(lower, start_value)
        return lower, self.tap.upper_bound

    def build_soql(self, columns: list[str] | None = None) -> str:
        """The Bulk query for this run: selected columns, the window and ``soql_filter``.

        No ORDER BY: Bulk 2.0 and PK chunking would refuse or ignore it, and the bookmark does
        not need it.
        """
        columns = columns or self.selected_columns()
        conditions: list[str] = []
        lower, upper = self.window()
        if self.replication_key:
            if lower is not None:
                conditions.append(Condition(self.replication_key, ">=", lower).to_soql())
            if upper is not None:
                conditions.append(Condition(self.replication_key, "<", upper).to_soql())
        soql_filter = self.tap.soql_filter_for(self.name)
        if soql_filter:
            conditions.append(f"({soql_filter})")
        soql = build_select(self.name, columns)
        if conditions:
            soql += " WHERE " + " AND ".join(conditions)
        return soql

    def _log_window(self) -> None:
        lower, upper = self.window()
        if upper is None:
            self.logger.info("%s: full table extract", self.name)
        else:
            self.logger.info(
                "%s: extracting %s >= %s and < %s", self.name, self.replication_key,
                lower.isoformat() if lower else "the beginning (no start_date: all history)",
                upper.isoformat())

    def prepare(self) -> PreparedQuery:
        """Decide the columns and SOQL of this run (in the main thread: it reads state)."""
        columns = self.selected_columns()
        soql = self.build_soql(columns)
        self._log_window()
        self.logger.info("%s: SOQL %s", self.name, soql)
        return PreparedQuery(columns, soql)

    def iter_source_records(self, prepared: PreparedQuery | None = None
                            ) -> Iterator[dict[str, Any]]:
        """Run the Bulk query and yield typed records as result pages arrive.

        Counts jobs and API calls in :attr:`stats` (records are counted as they are emitted).
        The query job is closed after the last row and aborted on any failure or early stop
        (including the caller closing this generator).
        """
        started = time.monotonic()
        prepared = prepared or self.prepare()
        columns, soql = prepared.columns, prepared.soql
        client = self.tap.connection.new_client()
        self._client = client
        types = {name: self.spec.field_types.get(name, "string") for name in columns}
        typer = RecordTyper(types, stream=self.name)
        include_deleted = bool(self.config.get("include_deleted"))
        use_bulk1 = str(self.config.get("bulk_api") or "2.0") == "1.0"
        self.stats.status = "running"
        try:
            if use_bulk1:
                rows = self._bulk1_rows(client, soql, columns, typer, include_deleted)
            else:
                rows = self._bulk2_rows(client, soql, typer, include_deleted)
            yield from with_rest_fallback(self, rows, client, soql, columns, typer,
                                          include_deleted)
        finally:
            self.stats.api_calls = client.api_calls
            self.stats.seconds = time.monotonic() - started

    def _bulk2_rows(
        self, client: SalesforceClient, soql: str, typer: RecordTyper, include_deleted: bool,
    ) -> Iterator[dict[str, Any]]:
        bulk = self.tap.connection.bulk2(client)
        configured = self.config.get("bulk2_page_size")
        page_size = DEFAULT_BULK2_PAGE_SIZE if configured is None else int(configured)
        if page_size < 1:
            raise ConfigError(f"bulk2_page_size must be at least 1, not {page_size}")
        self.stats.jobs += 1
        with bulk.query(soql, include_deleted, max_records=page_size) as rows:
            try:
                yield from _typed_dict_rows(rows, typer)
            finally:
                if rows.job is not None:
                    self.stats.job_ids.append(rows.job.id)

    def _bulk1_rows(
        self,
        client: SalesforceClient,
        soql: str,
        columns: list[str],
        typer: RecordTyper,
        include_deleted: bool,
    ) -> Iterator[dict[str, Any]]:
        bulk = self.tap.connection.bulk1(client)
        content_type = str(self.config.get("query_content_type") or "CSV").upper()
        chunking = self.tap.pk_chunking_for(self, client)
        pk_parent = self.spec.pk_parent if chunking and self.spec.pk_parent != self.name else None
        datetime_columns = [name for name in columns
                            if self.spec.field_types.get(name) == "datetime"]
        self.stats.jobs += 1
        with bulk.query(
            self.name,
            soql,
            include_deleted=include_deleted,
            pk_chunking=chunking,
            pk_parent=pk_parent,
            content_type=content_type,
            datetime_fields=datetime_columns,
        ) as rows:
            try:
                if content_type == "CSV":
                    yield from _typed_dict_rows(rows, typer)
                else:
                    yield from _typed_value_rows(rows, typer, columns)
            finally:
                if rows.job is not None:
                    self.stats.job_ids.append(rows.job.id)

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict[str, Any]]:
        """Records from the download thread when the tap started one, else read inline."""
        records = self.prefetch if self.prefetch is not None else self.iter_source_records()
        for record in records:
            self.stats.records += 1
            yield record

    def _generate_record_messages(
        self, record: dict[str, Any]
    ) -> Generator[RecordMessage, None, None]:
        """RECORD messages through the stream maps, without the SDK's per-record pruning.

        A record here holds exactly the selected columns (the SOQL selects nothing else) with
        values the typer already made JSON-ready, so pruning deselected properties and type
        conformance (the SDK's steps before the maps) would only cost time: on wide objects
        they were the largest share of the tap's CPU.
        """
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=utc_now(),
                )

    def get_batches(self, batch_config: Any, context: Mapping[str, Any] | None = None,
                    ) -> Iterator[tuple[Any, list[str]]]:
        """The SDK's BATCH files, made private (0600) before their BATCH message is written.

        The SDK writes them with the process umask (often 0644), yet they hold the org's
        records. Only local files (``file://`` or plain paths) can be restricted this way.
        """
        for encoding, manifest in super().get_batches(batch_config, context):
            for url in manifest:
                parts = urlsplit(url)
                if parts.scheme in ("", "file"):
                    os.chmod(unquote(parts.path), 0o600)
            yield encoding, manifest

    def abort_open_jobs(self) -> int:
        """Abort this stream's open Bulk jobs (used when the run stops early)."""
        client = self._client
        return client.open_jobs.abort_all() if client is not None else 0


def _typed_dict_rows(rows: Iterable[dict[str, str]], typer: RecordTyper
                     ) -> Iterator[dict[str, Any]]:
    """Type CSV rows given as dicts of cells, compiling the converter once per header."""
    header: tuple[str, ...] | None = None
    convert: Callable[[list[str]], dict[str, Any]] | None = None
    for row in rows:
        keys = tuple(row)
        if keys != header:
            header = keys
            convert = typer.row_converter(list(keys))
        assert convert is not None
        yield convert(list(row.values()))


def _typed_value_rows(rows: Iterable[dict[str, Any]], typer: RecordTyper, columns: list[str]
                      ) -> Iterator[dict[str, Any]]:
    """Type JSON/XML result rows the same way as CSV cells, so every format gives equal records.

    A missing parent comes back as ``"Account": null`` without the nested column, so every
    selected column is filled in (empty = null).
    """
    convert = typer.row_converter(list(columns))
    for row in rows:
        yield convert([_as_cell(row.get(name)) for name in columns])


def check_object_name(name: str) -> str:
    """Refuse names that could not be an sObject (they end up in SOQL and URLs)."""
    check_identifier(name)
    if "." in name:
        raise ValueError(f"{name!r} is not an object name")
    return name
