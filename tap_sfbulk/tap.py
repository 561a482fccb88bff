"""tap-sfbulk: a Singer tap that extracts Salesforce objects through the Bulk API (2.0 or 1.0).

The tap class is thin: settings, capabilities, discovery and the run loop. The Salesforce protocol
lives in :mod:`sfbulk` (auth, HTTP, describe, SOQL, CSV, Bulk 1.0/2.0); each stream is an
:class:`~tap_sfbulk.streams.SObjectStream`.

Parallel streams: the SDK's ``sync_all`` runs streams one after another. Here up to
``max_parallel_streams`` streams have their Bulk jobs running at once, each in a download thread
(:mod:`tap_sfbulk.prefetch`), while the main thread alone writes messages and touches state: it
drives each stream's SDK record loop, taking records from whichever stream has some ready. So the
output stays well-formed and the SDK's state semantics are unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections import deque
from collections.abc import Generator, Mapping
from typing import Any, ClassVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.helpers._state import (
    SIGNPOST_MARKER,
    STARTING_MARKER,
    reset_state_progress_markers,
)
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE

from sfbulk import http as sf_http
from sfbulk.describe import bulk_unqueryable_reason
from sfbulk.errors import ConfigError, SalesforceError
from sfbulk.http import SalesforceClient
from sfbulk.settings import described_settings
from tap_sfbulk.connection import Connection
from tap_sfbulk.discovery import (
    StreamSpec,
    build_spec,
    literal_patterns,
    match_objects,
)
from tap_sfbulk.prefetch import Prefetch
from tap_sfbulk.streams import DEFAULT_BULK2_PAGE_SIZE, SObjectStream, check_object_name
from tap_sfbulk.writer import BufferedSingerWriter

#: How far before the run's start the incremental upper bound lies (rows still committing).
UPPER_BOUND_LAG = dt.timedelta(seconds=5)
#: Records the main thread takes from one stream before looking at the others.
FAIR_SHARE = 1000
DEFAULT_PK_CHUNK_SIZE = 100_000
MAX_PK_CHUNK_SIZE = 250_000

_AUTH_NOTE = (
    "Login methods: (1) password: client_id, client_secret, username, password, "
    "security_token; (2) refresh_token: client_id, client_secret (if the app has one), "
    "refresh_token; (3) jwt: client_id, username, jwt_private_key or jwt_private_key_path; "
    "(4) client_credentials: client_id, client_secret with a My Domain login_url; "
    "(5) access_token: access_token and instance_url."
)


#: The tap's descriptions of the shared connection settings (:mod:`sfbulk.settings`).
_CONNECTION_DESCRIPTIONS = {
    "auth_type": "Login method. Optional: inferred from the credentials given. " + _AUTH_NOTE,
    "login_url": "OAuth host: https://login.salesforce.com (production), "
    "https://test.salesforce.com (sandbox) or your My Domain URL. All login methods.",
    "client_id": "Connected app consumer key. Login methods: password, refresh_token, jwt, "
    "client_credentials.",
    "client_secret": "Connected app consumer secret. Login methods: password, refresh_token (if "
    "the app has one), client_credentials.",
    "username": "Salesforce username. Login methods: password, jwt.",
    "password": "Salesforce password. Login method: password.",
    "security_token": "Security token appended to the password. Login method: password (leave "
    "empty when the IP range is trusted).",
    "refresh_token": "OAuth refresh token. Login method: refresh_token.",
    "jwt_private_key": "PEM text of the connected app's private key (\\n escapes accepted). "
    "Login method: jwt.",
    "jwt_private_key_path": "Path to a PEM file holding the connected app's private key. Login "
    "method: jwt.",
    "jwt_private_key_password": "Password of an encrypted private key. Login method: jwt.",
    "access_token": "A ready session token (cannot be renewed unless another login method's "
    "credentials are also given). Login method: access_token.",
    "instance_url": "The org's instance URL for access_token. Login method: access_token.",
    "api_version": "Salesforce API version used for every call (e.g. 62.0).",
}


class StreamSyncError(Exception):
    """One or more streams failed; the message summarises which and why."""


class TapSfBulk(Tap):
    """Salesforce Bulk API tap (Bulk 2.0 by default, Bulk 1.0 with PK chunking on request)."""

    name = "tap-sfbulk"
    package_name = "sfbulk"
    dynamic_catalog = True
    message_writer_class = BufferedSingerWriter

    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema = th.PropertiesList(
        *(th.Property(setting.name, th.StringType, secret=setting.secret, default=setting.default,
                      allowed_values=list(setting.allowed) if setting.allowed else None,
                      description=description)
          for setting, description in described_settings(_CONNECTION_DESCRIPTIONS)),
        th.Property("bulk_api", th.StringType, default="2.0", allowed_values=["2.0", "1.0"],
                    description="Bulk API for queries: 2.0 (default; Salesforce chunks large "
                    "tables itself) or 1.0 (explicit PK chunking, CSV/JSON/XML results)."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest replication-key value to extract on a first run. "
                    "Unset: all history."),
        th.Property("lookback_seconds", th.IntegerType, default=300,
                    description="Incremental runs re-read this many seconds before the saved "
                    "bookmark, to catch rows that committed late with an earlier timestamp."),
        th.Property("upper_bound_lag_seconds", th.NumberType, default=5,
                    description="Incremental windows end this many seconds before the run "
                    "started, leaving rows that may still be committing to the next run."),
        th.Property("include_deleted", th.BooleanType, default=False,
                    description="Use queryAll: also extract deleted and archived rows "
                    "(IsDeleted = true)."),
        th.Property("rest_fallback", th.BooleanType, default=True,
                    description="When the Bulk API refuses an object itself (INVALIDENTITY: "
                    "its \"Allow Bulk API Access\" is off), read it through the REST query "
                    "API instead, with a warning; the records and state are the same. Off: "
                    "such a stream fails."),
        th.Property("streams", th.ArrayType(th.StringType),
                    description="Object name patterns to discover (shell-style, "
                    "case-insensitive), e.g. [\"Account\", \"Contact\", \"*__c\"]. Only "
                    "matching objects are described. Unset: every Bulk-queryable object."),
        th.Property("pk_chunking", th.StringType, default="auto",
                    allowed_values=["off", "on", "auto"],
                    description="Bulk 1.0 PK chunking. on: chunk every object that supports it "
                    "(Share/History objects through their parent); auto: chunk supported "
                    "objects whose row count exceeds pk_chunk_size; off: never. Bulk 2.0 "
                    "chunks by itself."),
        th.Property("pk_chunk_size", th.IntegerType, default=DEFAULT_PK_CHUNK_SIZE,
                    description="Rows per PK chunk (at most 250,000)."),
        th.Property("max_parallel_streams", th.IntegerType, default=4,
                    description="Streams whose Bulk jobs run at the same time."),
        th.Property("poll_interval_max_seconds", th.NumberType, default=30,
                    description="Longest wait between job status polls (polls start at half "
                    "a second and grow)."),
        th.Property("job_timeout_seconds", th.NumberType, default=3600,
                    description="Time a Bulk job may take before it is aborted and the stream "
                    "fails."),
        th.Property("max_api_share", th.NumberType,
                    description="Stop before starting a Bulk job once this share (0-1) of the "
                    "org's daily API requests is used. Unset: no check."),
        th.Property("soql_filter", th.ObjectType(additional_properties=th.StringType),
                    description="Per-object row filter: object name -> SOQL WHERE clause text, "
                    "e.g. {\"Account\": \"Industry = 'Banking'\"}."),
        th.Property("related_fields",
                    th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
                    description="Per-object parent fields: object name -> relationship paths, "
                    "e.g. {\"Contact\": [\"Account.External_Id__c\"]}; emitted as columns of "
                    "that name, typed from the parent's describe."),
        th.Property("query_content_type", th.StringType, default="CSV",
                    allowed_values=["CSV", "JSON", "XML"],
                    description="Bulk 1.0 result format (records are identical for all three)."),
        th.Property("bulk2_page_size", th.IntegerType, default=DEFAULT_BULK2_PAGE_SIZE,
                    description="Bulk 2.0 maxRecords: the most rows per results page (one API "
                    "call each). Salesforce still caps a page by its own size limits, so a "
                    "large value costs nothing; lower it only if result downloads time out."),
        th.Property("continue_on_stream_error", th.BooleanType, default=False,
                    description="Let the other streams finish when one fails; the run still "
                    "ends non-zero with a summary."),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connection: Connection | None = None
        self._pk_counts: dict[str, int | None] = {}
        self._stopping_signal: int | None = None
        super().__init__(*args, **kwargs)

    # -- shared pieces --------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The run's link to the org (built on first use)."""
        if self._connection is None:
            parallel = int(self.config.get("max_parallel_streams") or 4)
            self._connection = Connection(self.config, pool_size=max(4, parallel))
        return self._connection

    @property
    def upper_bound(self) -> dt.datetime:
        """The run's fixed upper bound for replication keys: start time minus a few seconds."""
        started = dt.datetime.fromtimestamp(self.initialized_at / 1000, tz=dt.timezone.utc)
        lag = self.config.get("upper_bound_lag_seconds")
        return started - (UPPER_BOUND_LAG if lag is None else dt.timedelta(seconds=float(lag)))

    def soql_filter_for(self, name: str) -> str | None:
        """The configured WHERE clause text for an object (names matched without case)."""
        filters = self.config.get("soql_filter") or {}
        folded = name.lower()
        for key, value in filters.items():
            if key.lower() == folded and value and str(value).strip():
                return str(value).strip()
        return None

    def related_paths_for(self, name: str) -> list[str]:
        """The configured parent paths for an object (names matched without case)."""
        related = self.config.get("related_fields") or {}
        folded = name.lower()
        for key, value in related.items():
            if key.lower() == folded:
                return [str(path) for path in value or []]
        return []

    def pk_chunking_for(self, stream: SObjectStream, client: SalesforceClient) -> int | None:
        """The PK chunk size to request for a Bulk 1.0 query of ``stream`` (None: no chunking).

        ``on`` chunks whenever the object supports it; ``auto`` only when its row count
        (``SELECT COUNT()``, one REST call) exceeds the chunk size, or when the count itself
        fails (which on Salesforce means a very large table).
        """
        mode = str(self.config.get("pk_chunking") or "auto").lower()
        if mode == "off":
            return None
        size = int(self.config.get("pk_chunk_size") or DEFAULT_PK_CHUNK_SIZE)
        if stream.spec.pk_parent is None:
            self.logger.info("%s does not support PK chunking; querying it in one batch",
                             stream.name)
            return None
        if mode == "on":
            return size
        try:
            body = client.rest("GET", "/query",
                               params={"q": f"SELECT COUNT() FROM {stream.name}"}).json()
            count = int(body.get("totalSize", 0))
        except (SalesforceError, ValueError) as exc:
            self.logger.info("Could not count %s (%s); using PK chunking", stream.name, exc)
            return size
        self.logger.info("%s holds %d rows; PK chunking %s", stream.name, count,
                         "on" if count > size else "off")
        return size if count > size else None

    # -- discovery ------------------------------------------------------------------------------

    def discover_streams(self) -> list[Stream]:
        """One stream per Bulk-queryable object matching ``streams`` (or per catalog entry)."""
        if self.input_catalog is not None:
            return self._streams_from_catalog()
        describer = self.connection.describer
        objects = describer.global_objects()
        patterns = self.config.get("streams") or None
        names = match_objects(objects, patterns)
        known = {name.lower() for name in objects}
        missing = [literal for literal in literal_patterns(patterns)
                   if literal.lower() not in known]
        if missing:
            # A misspelt object would otherwise give a run that succeeds with nothing extracted.
            raise ConfigError(f"streams: the org has no object named {', '.join(missing)}")
        literal_names = {p.lower() for p in literal_patterns(patterns)}
        candidates: list[str] = []
        for name in names:
            reason = bulk_unqueryable_reason(name, objects[name])
            if reason is None:
                candidates.append(name)
            elif name.lower() in literal_names:
                self.logger.warning("Leaving out %s: %s", name, reason)
            else:
                self.logger.info("Leaving out %s: %s", name, reason)
        describes = describer.describe_many(candidates)
        streams: list[Stream] = []
        for name in candidates:
            spec = build_spec(
                describes[name],
                related_paths=self.related_paths_for(name),
                describe_of=describer.parent_describe,
            )
            streams.append(SObjectStream(self, spec))
        self.logger.info("Discovered %d streams with %d API calls", len(streams),
                         self.connection.api_calls)
        return streams

    def _streams_from_catalog(self) -> list[Stream]:
        """Streams for a given catalog: only the selected objects are described."""
        catalog = self.input_catalog
        assert catalog is not None
        describer = self.connection.describer
        entries = list(catalog.streams)
        selected = [entry for entry in entries
                    if entry.metadata.resolve_selection().get((), False)]
        existing: list[str] = []
        for entry in selected:
            name = check_object_name(entry.tap_stream_id)
            if describer.global_entry(name) is not None:
                existing.append(name)
        describes = describer.describe_many(existing)
        streams: list[Stream] = []
        for entry in entries:
            name = check_object_name(entry.tap_stream_id)
            if name in describes:
                spec = build_spec(describes[name], related_paths=self.related_paths_for(name),
                                  describe_of=describer.parent_describe)
            else:
                # Not selected (no need to describe it), or gone from the org (it then fails
                # when synced, naming the object).
                spec = StreamSpec(name=name, schema=entry.schema.to_dict(),
                                  replication_key=entry.replication_key)
            streams.append(SObjectStream(self, spec))
        return streams

    # -- sync -----------------------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: Any) -> None:  # pragma: no cover
        """On SIGTERM/SIGINT: wake every job wait so open jobs are aborted, then exit 128+signum.

        The SDK's handler exits 0, which tells an orchestrator the extraction finished; it did
        not (the interrupted streams keep their old bookmarks), so the exit code says so. A
        second signal while stopping is only logged: raising again would cut short the job
        aborts and the closing STATE, which are bounded by the HTTP timeouts anyway.
        """
        if self._stopping_signal is not None:
            self.logger.warning("Received signal %d while stopping: still aborting open Bulk "
                                "jobs", signum)
            return
        self._stopping_signal = signum
        sf_http.request_shutdown()
        self.logger.warning("Received signal %d: aborting open Bulk jobs and stopping", signum)
        raise SystemExit(128 + signum)

    def sync_all(self) -> None:  # type: ignore[misc]
        """Sync every selected stream, up to ``max_parallel_streams`` at once.

        Same steps as the SDK's ``sync_all`` (reset progress markers, write the incoming state,
        sync, finalize, log costs); only the loop over streams differs.

        Raises:
            StreamSyncError: A stream failed (with ``continue_on_stream_error``, after the others
                finished); the message lists the failed streams and Salesforce's errors.
        """
        self._reset_state_progress_markers()
        self._set_compatible_replication_methods()
        if self.state:
            self._state_writer.write_state(self.state)
        self.logger.info(
            "Effective start: %s", self.config.get("start_date") or "all history (no start_date)"
        )
        selected: list[SObjectStream] = []
        for stream in self.streams.values():
            if not stream.selected:
                self.logger.info("Skipping deselected stream '%s'.", stream.name)
                continue
            assert isinstance(stream, SObjectStream)
            selected.append(stream)
        try:
            failures = self._run_streams(selected)
        finally:
            self._flush_output()
            self._log_summary(selected)
            if self._connection is not None:
                self._connection.close()
        for stream in self.streams.values():
            stream.log_sync_costs()
        if failures:
            lines = [f"{stream.name}: {stream.stats.error}" for stream in failures]
            message = f"{len(failures)} of {len(selected)} streams failed: " + "; ".join(lines)
            unfinished = [s.name for s in selected if s.stats.status in ("stopped", "skipped")]
            if unfinished:
                message += f" (not finished: {', '.join(unfinished)})"
            raise StreamSyncError(message)

    def _run_streams(self, streams: list[SObjectStream]) -> list[SObjectStream]:
        """Drive the streams' record loops in this thread, downloads in background threads."""
        limit = max(1, int(self.config.get("max_parallel_streams") or 4))
        keep_going = bool(self.config.get("continue_on_stream_error"))
        wake = threading.Condition()

        def notify() -> None:
            with wake:
                wake.notify_all()

        pending = deque(streams)
        active: dict[str, tuple[SObjectStream, Generator[None, None, None]]] = {}
        failures: list[SObjectStream] = []

        def fail(stream: SObjectStream, exc: Exception) -> None:
            self._stream_failed(stream, exc)
            failures.append(stream)
            if not keep_going:
                # Stop the others (their bookmarks stay where they were) and end the run.
                for other, driver in active.values():
                    driver.close()
                    self._stop_stream(other, "stopped")
                active.clear()
                for other in pending:
                    other.stats.status = "skipped"
                pending.clear()
                self._state_writer.write_state(self.state)

        try:
            while pending or active:
                while pending and len(active) < limit:
                    stream = pending.popleft()
                    try:
                        prepared = stream.prepare()
                    except Exception as exc:
                        fail(stream, exc)
                        continue
                    stream.prefetch = Prefetch(
                        stream.name,
                        lambda s=stream, p=prepared: s.iter_source_records(p),  # type: ignore[misc]
                        notify,
                        chunk_size=stream.PREFETCH_CHUNK,
                    )
                    stream.prefetch.start()
                    active[stream.name] = (stream, self._drive(stream))
                ready = self._ready_streams(active)
                if not ready:
                    # Nothing to write until a download delivers: send what is gathered
                    # (outside the lock, which producers take to notify).
                    self._flush_output()
                    with wake:
                        if active and not self._ready_streams(active):
                            # Producers notify per chunk; partial chunks are looked at
                            # on this short timeout.
                            wake.wait(0.1)
                    continue
                for name in ready:
                    if name not in active:
                        continue  # stopped because another stream failed
                    stream, driver = active[name]
                    try:
                        for _ in range(FAIR_SHARE):
                            next(driver)
                            if stream.prefetch is None or not stream.prefetch.ready():
                                break
                    except StopIteration:
                        del active[name]
                        stream.stats.status = "ok"
                        self._log_stream_done(stream)
                    except Exception as exc:
                        del active[name]
                        fail(stream, exc)
        except BaseException:
            # Interrupted (SIGTERM, Ctrl-C) or a bug: abort every open job, keep bookmarks.
            for stream, driver in active.values():
                driver.close()
                self._stop_stream(stream, "stopped")
            self._state_writer.write_state(self.state)
            raise
        return failures

    @staticmethod
    def _ready_streams(
        active: Mapping[str, tuple[SObjectStream, Generator[None, None, None]]],
    ) -> list[str]:
        """Names of the active streams whose download has records waiting."""
        return [name for name, (stream, _) in active.items()
                if stream.prefetch is not None and stream.prefetch.ready()]

    def _flush_output(self) -> None:
        """Send RECORD lines the writer gathered (it writes them in blocks)."""
        if isinstance(self.message_writer, BufferedSingerWriter):
            self.message_writer.flush()

    def _drive(self, stream: SObjectStream) -> Generator[None, None, None]:
        """The SDK's ``Stream.sync`` and the finalisation ``sync_all`` adds, one record per step.

        Mirrors singer-sdk 0.54: signpost, SCHEMA, ACTIVATE_VERSION for full-table streams when
        asked, then BATCH messages (with ``batch_config``) or RECORD/STATE messages.
        """
        stream.log("Beginning sync of '%s' in %s mode", stream.name,
                   stream.replication_method.lower())
        stream.context = None
        if signpost := stream.get_replication_key_signpost(None):
            stream._write_replication_key_signpost(None, signpost)
        stream._write_schema_message()
        if (stream.replication_method == REPLICATION_FULL_TABLE
                and stream.emit_activate_version_messages):
            stream._stream_version = stream._initialized_at // 1000
            stream._write_activate_version_message(stream._stream_version)
        batch_config = stream.get_batch_config(stream.config)
        try:
            if batch_config:
                with stream.get_batch_counter() as counter:
                    for encoding, manifest in stream.get_batches(batch_config, None):
                        counter.increment()
                        stream._write_batch_message(encoding=encoding, manifest=manifest)
                        stream._write_state_message()
                        yield
            else:
                for _ in stream._sync_records(context=None):
                    yield
        except Exception:
            stream.log("An unhandled error occurred while syncing '%s'", stream.name,
                       level=logging.ERROR)
            raise
        stream.finalize_state_progress_markers()

    def _stream_failed(self, stream: SObjectStream, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        stream.stats.error = message
        self.logger.error("Stream %s failed: %s", stream.name, message)
        self._stop_stream(stream, "failed")
        # Its bookmark stays where it was; the next run starts from there.
        self._state_writer.write_state(self.state)

    def _stop_stream(self, stream: SObjectStream, status: str) -> None:
        """Stop a stream's download, abort its open jobs, and drop its unfinished progress."""
        stream.stats.status = status
        if stream.prefetch is not None:
            stream.prefetch.cancel()
        aborted = stream.abort_open_jobs()
        if aborted:
            self.logger.info("Aborted %d open job(s) of stream %s", aborted, stream.name)
        if stream.prefetch is not None and not stream.prefetch.join(timeout=10):
            self.logger.warning("The download thread of %s is still busy; its job is aborted "
                                "at exit", stream.name)
        state = self.state.get("bookmarks", {}).get(stream.name)
        if isinstance(state, dict):
            reset_state_progress_markers(state)
            state.pop(SIGNPOST_MARKER, None)
            state.pop(STARTING_MARKER, None)

    def _log_stream_done(self, stream: SObjectStream) -> None:
        stats = stream.stats
        self.logger.info("Stream %s: %d records, %d job(s) %s, %d API calls, %.1f s",
                         stream.name, stats.records, stats.jobs, ",".join(stats.job_ids) or "-",
                         stats.api_calls, stats.seconds)

    def _log_summary(self, streams: list[SObjectStream]) -> None:
        """The closing summary: per stream records, jobs, API calls and seconds; then totals."""
        if not streams:
            self.logger.info("Run summary: no stream was selected")
            return
        width = max(len(stream.name) for stream in streams)
        lines = [f"{'stream':<{width}}  {'status':<8} {'records':>10} {'jobs':>5} "
                 f"{'API calls':>9} {'seconds':>8}"]
        for stream in streams:
            s = stream.stats
            lines.append(f"{stream.name:<{width}}  {s.status:<8} {s.records:>10} {s.jobs:>5} "
                         f"{s.api_calls:>9} {s.seconds:>8.1f}")
        total_calls = self._connection.api_calls if self._connection is not None else 0
        lines.append(f"total: {sum(s.stats.records for s in streams)} records, "
                     f"{sum(s.stats.jobs for s in streams)} jobs, {total_calls} API calls "
                     "(discovery included)")
        self.logger.info("Run summary\n%s", "\n".join(lines))
        for stream in streams:
            if stream.stats.error:
                self.logger.error("Stream %s failed: %s", stream.name, stream.stats.error)

    def summary(self) -> Mapping[str, Any]:
        """Per-stream statistics of the last sync (for programs embedding the tap)."""
        return {name: stream.stats for name, stream in self.streams.items()
                if isinstance(stream, SObjectStream)}


def main() -> None:
    """Run ``tap-sfbulk``; a configuration mistake ends with one line naming it, not a traceback.

    Discovery runs inside the SDK's option parsing, before ``Tap.invoke``, so the command itself
    is the one place that sees every configuration error.
    """
    try:
        TapSfBulk.cli()
    except ConfigError as exc:
        TapSfBulk.logger.error("Configuration error: %s", exc)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
