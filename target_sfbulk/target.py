"""target-sfbulk: load Singer streams into Salesforce objects through the Bulk API (2.0 or 1.0).

The target class is thin: settings, capabilities, the sink class, and the three places where the
SDK's defaults do not fit a remote, asynchronous destination:

- **Drain order.** A full drain loads streams in waves, parents before the children that
  reference them (:mod:`target_sfbulk.ordering`); streams within a wave load in parallel, at most
  ``max_parallel_jobs`` jobs at a time across the run.
- **Termination.** On SIGTERM or SIGINT the target does not drain (a drain would start new jobs
  and could outlive the grace period): it cuts every wait short, aborts its open Bulk jobs and
  exits 143 (or 130) without writing STATE. The last STATE it wrote covers only records whose
  outcome was known, so a rerun from it loses nothing.
- **Failures.** Records that did not load are counted and written to ``failed_records_path``.
  When more than ``max_failed_records`` have failed, the target finishes the drain in progress
  (STATE then covers records whose outcome is known, failures included), prints a summary and
  exits non-zero.
"""

from __future__ import annotations

import gc
import sys
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from types import FrameType

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalSyncError, InvalidRecord
from singer_sdk.helpers.capabilities import (
    TARGET_HARD_DELETE_CONFIG,
    CapabilitiesEnum,
    PluginCapabilities,
    TargetCapabilities,
)
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.exceptions import SingerReadError
from singer_sdk.target_base import Target

from sfbulk.auth import SalesforceAuth
from sfbulk.bulk1 import Bulk1
from sfbulk.bulk2 import Bulk2
from sfbulk.csvcodec import resolve_timezone
from sfbulk.describe import Describer
from sfbulk.errors import ConfigError, SalesforceError
from sfbulk.http import DEFAULT_API_VERSION, SalesforceClient, abort_all_open_jobs, request_shutdown
from sfbulk.settings import auth_config, described_settings
from target_sfbulk.failures import RunTally
from target_sfbulk.loader import Loader, LoadSettings
from target_sfbulk.mapping import OPERATIONS
from target_sfbulk.ordering import waves
from target_sfbulk.reading import SingerLineReader
from target_sfbulk.sinks import SalesforceSink

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.sinks import Sink


def _tune_collector() -> None:
    """Keep Python's cycle collector from rescanning what a load holds, in the command only.

    A batch keeps every record and its prepared row until its job's outcome is known, so the
    heap grows by a few objects per record; with the default thresholds the collector walks
    these (and everything imported at startup) over and over, about a seventh of the target's
    CPU. Objects alive now are frozen out of collections (they live until exit anyway), and the
    youngest generation is collected every 50,000 allocations instead of 700. Memory is still
    freed by reference counting as soon as a batch drains; only reference cycles wait longer.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class TooManyFailedRecordsError(Exception):
    """More records failed than ``max_failed_records`` allows; the message is the summary."""


class UnbalancedOutcomesError(Exception):
    """Outcomes do not add up to the records received (a defect: never a Salesforce condition)."""


#: The target's descriptions of the shared connection settings (:mod:`sfbulk.settings`).
_CONNECTION_DESCRIPTIONS = {
    "auth_type": "Login method; inferred from the settings given when unset.",
    "login_url": "OAuth host: login.salesforce.com, test.salesforce.com (sandbox) or your My "
    "Domain URL.",
    "client_id": "Connected app consumer key.",
    "client_secret": "Connected app consumer secret.",
    "username": "Salesforce username.",
    "password": "Password.",
    "security_token": "Security token appended to the password.",
    "refresh_token": "OAuth refresh token.",
    "jwt_private_key": "PEM private key for the JWT bearer flow.",
    "jwt_private_key_path": "File holding the PEM private key for the JWT bearer flow.",
    "jwt_private_key_password": "Password of an encrypted private key.",
    "access_token": "A ready access token (with `instance_url`); not renewable unless other "
    "credentials are given.",
    "instance_url": "Org URL for `access_token`.",
    "api_version": "Salesforce API version, e.g. 62.0.",
}

_STREAM_OVERRIDE = th.ObjectType(
    th.Property("object", th.StringType,
                description="Salesforce object the stream loads (any case); default: the stream "
                            "name."),
    th.Property("action", th.StringType, allowed_values=list(OPERATIONS),
                description="Operation for this stream; default: the `action` setting."),
    th.Property("external_id_field", th.StringType,
                description="Upsert key for this stream (an external id field or Id)."),
    th.Property("field_renames", th.ObjectType(additional_properties=th.StringType),
                description="Record key → field or relationship column "
                            "(`{\"acct\": \"Account.External_Id__c\"}`)."),
    th.Property("exclude_fields", th.ArrayType(th.StringType),
                description="Record keys dropped before anything else (any case), e.g. a source "
                            "org's `AccountId` when `Account.External_Id__c` carries the parent."),
    additional_properties=False,
)


class TargetSfBulk(Target):
    """Singer target for Salesforce over the Bulk API."""

    name = "target-sfbulk"
    package_name = "sfbulk"
    default_sink_class = SalesforceSink
    message_reader_class = SingerLineReader

    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        PluginCapabilities.BATCH,
        TargetCapabilities.VALIDATE_RECORDS,
        TargetCapabilities.HARD_DELETE,
    ]

    config_jsonschema = th.PropertiesList(
        # -- login and connection (shared with tap-sfbulk) --
        *(th.Property(setting.name, th.StringType, secret=setting.secret, default=setting.default,
                      allowed_values=list(setting.allowed) if setting.allowed else None,
                      description=description)
          for setting, description in described_settings(_CONNECTION_DESCRIPTIONS)),
        # -- loading --
        th.Property("bulk_api", th.StringType, default="2.0", allowed_values=["2.0", "1.0"],
                    description="Bulk API used for loads (binary content always uses 1.0 ZIP "
                                "batches)."),
        th.Property("rest_fallback", th.BooleanType, default=True,
                    description="When the Bulk API refuses an object itself (INVALIDENTITY: "
                                "its \"Allow Bulk API Access\" is off), load it through REST "
                                "sObject Collections (200 records per call) instead, with a "
                                "warning; outcomes, failed records and STATE as with Bulk. "
                                "Off: such loads fail. (No REST hard delete.)"),
        th.Property("action", th.StringType, default="insert", allowed_values=list(OPERATIONS),
                    description="Operation for every stream unless `streams` says otherwise."),
        th.Property("external_id_field", th.StringType,
                    description="Upsert key (default: the stream's key property when it is Id or "
                                "an external id field)."),
        th.Property("streams", th.ObjectType(additional_properties=_STREAM_OVERRIDE),
                    description="Per-stream overrides by stream name: object, action, "
                                "external_id_field, field_renames, exclude_fields."),
        th.Property("concurrency_mode", th.StringType, default="Parallel",
                    allowed_values=["Parallel", "Serial"],
                    description="Bulk 1.0 job concurrency; Serial avoids UNABLE_TO_LOCK_ROW on "
                                "shared parents."),
        th.Property("max_parallel_jobs", th.IntegerType, default=4,
                    description="Bulk jobs running at once across all streams; a stream's "
                                "next batches load beside its running ones when they cannot "
                                "clash (inserts, or keys no running batch writes)."),
        th.Property("null_handling", th.StringType, default="clear",
                    allowed_values=["clear", "ignore"],
                    description="`clear`: a null sets the field to null (#N/A); `ignore`: a null "
                                "leaves the field unchanged. An absent key always leaves it "
                                "unchanged."),
        th.Property("timezone", th.StringType, default="UTC",
                    description="IANA zone of datetimes given without an offset, and the zone "
                                "in which a datetime given to a date field is dated."),
        th.Property("failed_records_path", th.StringType,
                    description="JSON-lines file (mode 0600) receiving every record that did not "
                                "load, with its error; logged when unset."),
        th.Property("max_failed_records", th.IntegerType, default=0,
                    description="More failed records than this ends the run with a non-zero "
                                "exit."),
        th.Property("lock_retry_attempts", th.IntegerType, default=3,
                    description="Times rows failing with UNABLE_TO_LOCK_ROW are resubmitted."),
        th.Property("lock_retry_wait_seconds", th.NumberType, default=2.0,
                    description="Wait before the first lock retry (grows linearly)."),
        th.Property("content_type", th.StringType, default="CSV",
                    allowed_values=["CSV", "JSON", "XML"],
                    description="Bulk 1.0 batch format (and of request.txt in ZIP batches)."),
        th.Property("unknown_fields", th.StringType, default="reject",
                    allowed_values=["reject", "drop"],
                    description="Fields the object lacks or the operation cannot write: `reject` "
                                "stops before any job when the SCHEMA declares one (and fails "
                                "records carrying undeclared ones); `drop` drops them with a "
                                "warning."),
        th.Property("binary_root", th.StringType,
                    description="Directory that `#path` values of binary fields (Attachment "
                                "Body, ContentVersion VersionData…) are read from."),
        th.Property("poll_interval_seconds", th.NumberType, default=0.5,
                    description="First wait between job status polls (it grows 1.5x per poll)."),
        th.Property("poll_interval_max_seconds", th.NumberType, default=30.0,
                    description="Longest wait between job status polls."),
        th.Property("job_timeout_seconds", th.NumberType, default=3600.0,
                    description="A job not finished after this long is aborted."),
        th.Property("max_api_share", th.NumberType,
                    description="Stop before starting a Bulk job once this share (0-1) of the "
                                "org's daily API requests is used. Unset: no check."),
    ).to_dict()

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """Add the SDK's settings, and ``hard_delete`` (used for ``_sdc_deleted_at``)."""
        for key, value in TARGET_HARD_DELETE_CONFIG["properties"].items():
            config_jsonschema["properties"].setdefault(key, value)
        super().append_builtin_config(config_jsonschema)
        validate = config_jsonschema["properties"].get("validate_records")
        if validate is not None:
            validate["default"] = False
            validate["description"] = (
                "Validate records against the stream's JSON schema before loading (off by "
                "default: every value is checked against its Salesforce field anyway, and a bad "
                "one fails only its record, while schema validation stops the run).")

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._check_settings()
        self.max_parallelism = int(self.config.get("max_parallel_jobs") or 4)
        self._job_slots = threading.BoundedSemaphore(self.max_parallelism)
        self._sf_lock = threading.Lock()
        self._drain_lock = threading.RLock()
        self.tally = RunTally(self.config.get("failed_records_path"))
        self._stopping = False
        self._max_failed = int(self.config.get("max_failed_records") or 0)
        #: Where sinks run loads that may overlap the stream's next batch (see
        #: ``SalesforceSink.process_batch``); a load holds a job slot while its job runs.
        self.load_pool = ThreadPoolExecutor(max_workers=self.max_parallelism,
                                            thread_name_prefix="load")
        #: Per stream: (its stream maps, its sink, the sink when records take the plain path).
        self._plain_sinks: dict[t.Any, tuple[t.Any, t.Any, SalesforceSink | None]] = {}

    # -- settings --------------------------------------------------------------------------------

    def _check_settings(self) -> None:
        config = self.config
        try:
            resolve_timezone(config.get("timezone"))
        except ValueError as exc:
            raise ConfigError(f"timezone: {exc}") from None
        for name in ("max_parallel_jobs",):
            if int(config.get(name) or 1) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("max_failed_records", "lock_retry_attempts"):
            if int(config.get(name) or 0) < 0:
                raise ConfigError(f"{name} must not be negative")
        share = config.get("max_api_share")
        if share is not None and not 0 < float(share) <= 1:
            raise ConfigError("max_api_share must be above 0 and at most 1")
        if config.get("bulk_api", "2.0") == "2.0" and config.get("content_type", "CSV") != "CSV":
            raise ConfigError("content_type JSON or XML needs bulk_api 1.0 (Bulk 2.0 takes CSV)")
        if config.get("bulk_api", "2.0") == "2.0" and config.get("concurrency_mode") == "Serial":
            raise ConfigError("concurrency_mode Serial needs bulk_api 1.0 (Bulk 2.0 jobs are "
                              "always Parallel)")

    # -- the Salesforce side, built on first use (so --about needs no credentials) ---------------

    @cached_property
    def client(self) -> SalesforceClient:
        auth = SalesforceAuth.from_config(auth_config(self.config))
        share = self.config.get("max_api_share")
        return SalesforceClient(auth, str(self.config.get("api_version") or DEFAULT_API_VERSION),
                                max_api_share=float(share) if share is not None else None,
                                pool_size=max(16, self.max_parallelism * 2))

    @cached_property
    def describer(self) -> Describer:
        return Describer(self.client)

    @cached_property
    def loader(self) -> Loader:
        config = self.config
        poll = {
            "poll_interval_seconds": float(config.get("poll_interval_seconds") or 0.5),
            "poll_interval_max_seconds": float(config.get("poll_interval_max_seconds") or 30.0),
            "job_timeout_seconds": float(config.get("job_timeout_seconds") or 3600.0),
        }
        root = config.get("binary_root")
        settings = LoadSettings(
            bulk_api=str(config.get("bulk_api") or "2.0"),
            content_type=str(config.get("content_type") or "CSV"),
            concurrency_mode=str(config.get("concurrency_mode") or "Parallel"),
            lock_retry_attempts=int(config.get("lock_retry_attempts", 3)),
            lock_retry_wait=float(config.get("lock_retry_wait_seconds", 2.0)),
            tz=resolve_timezone(config.get("timezone")),
            binary_root=Path(root).expanduser() if root else None,
            job_timeout=poll["job_timeout_seconds"],
            rest_fallback=bool(config.get("rest_fallback", True)),
        )
        return Loader(Bulk1(self.client, **poll), Bulk2(self.client, **poll), settings,
                      self._job_slots)

    def salesforce(self) -> tuple[Describer, Loader]:
        """The describer and loader, built once however many sinks ask at once."""
        with self._sf_lock:
            return self.describer, self.loader

    # -- draining --------------------------------------------------------------------------------

    def _drain_all(self, sink_list: Iterable[Sink], parallelism: int) -> None:
        """Drain in waves, parents first; sinks of one wave in parallel."""
        sink_list = list(sink_list)
        ours = [sink for sink in sink_list if isinstance(sink, SalesforceSink)]
        for sink in ours:
            sink.catch_up()
        sinks = [sink for sink in sink_list if sink.current_size]
        try:
            if sinks:
                self._drain_waves(sinks, parallelism)
        except BaseException:
            # Stopping (an error, SIGTERM): loads still end before the run does, but their own
            # errors (on SIGTERM, the cut waits of aborted jobs) must not replace the reason.
            for sink in ours:
                sink.wait_loads(raise_errors=False)
            raise
        # The SDK writes STATE when this returns: every background load must be done.
        for sink in ours:
            sink.wait_loads()

    def _drain_waves(self, sinks: list[Sink], parallelism: int) -> None:
        objects: dict[Sink, str] = {
            sink: getattr(sink, "object_name", sink.stream_name) for sink in sinks}
        references: dict[Sink, set[str]] = {
            sink: getattr(sink, "references", set()) for sink in sinks}
        for wave in waves(sinks, objects, references):
            if parallelism == 1 or len(wave) == 1:
                for sink in wave:
                    self.drain_one(sink)
                continue
            with ThreadPoolExecutor(max_workers=min(parallelism, len(wave)),
                                    thread_name_prefix="drain") as pool:
                futures = [pool.submit(self.drain_one, sink) for sink in wave]
                for future in futures:
                    future.result()

    def drain_parents(self, child: SalesforceSink) -> None:
        """Load pending records of the streams ``child`` references before ``child``'s own.

        Called when one sink drains alone (it filled up, or a BATCH message arrived), so a child
        never reaches Salesforce before parents that came earlier in the input.
        """
        referenced = {name.lower() for name in child.references}
        parents = [sink for sink in self._sinks_active.values()
                   if sink is not child and isinstance(sink, SalesforceSink)
                   and sink.object_name.lower() in referenced
                   and sink.object_name.lower() != child.object_name.lower()]
        for parent in parents:
            parent.catch_up()
            if parent.current_size:
                self.drain_parents(parent)
                self.drain_one(parent)
            parent.wait_loads()  # loads still running in the background, too

    # -- failures and the end of the run ----------------------------------------------------------

    def _check_failures(self) -> None:
        limit = int(self.config.get("max_failed_records") or 0)
        failed = self.tally.not_loaded
        if failed > limit and not self._stopping:
            self._stopping = True
            self.logger.error("%d record(s) did not load, more than max_failed_records (%d); "
                              "finishing the loads in progress and stopping", failed, limit)
            self.drain_all()
            self._finish(raise_on_failures=True)

    def check_failures(self) -> None:
        """Stop the run once more records failed than ``max_failed_records`` allows."""
        if self.tally.not_loaded_count > self._max_failed:
            self._check_failures()

    def _process_record_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        # Raw JSON: only a dict takes the plain path (checked by class, the fastest test).
        record: t.Any = message_dict.get("record")
        sink = self._plain_sink(stream) if record.__class__ is dict else None
        if sink is None:
            super()._process_record_message(message_dict)
            self.check_failures()
        else:
            # From now on the reader hands this stream's records to the sink directly, until
            # the next SCHEMA, BATCH or ACTIVATE_VERSION message (see SingerLineReader).
            self.message_reader.record_takers[stream] = sink.take  # type: ignore[attr-defined]
            sink.take(record)

    def _plain_sink(self, stream: t.Any) -> SalesforceSink | None:
        """The stream's sink when its records need none of the SDK's per-record machinery:
        no stream map but the identity one, no flattening, no validation or date parsing, no
        metadata columns added (:meth:`SalesforceSink.take` does what is left). Decided once
        per stream map and sink (a SCHEMA replaces both)."""
        maps = self.mapper.stream_maps.get(stream)
        sink = self._sinks_active.get(stream)
        known = self._plain_sinks.get(stream)
        if known is not None and known[0] is maps and known[1] is sink:
            return known[2]
        plain = None
        if (maps is not None and len(maps) == 1 and type(maps[0]) is SameRecordTransform
                and maps[0].stream_alias == stream and not maps[0].flattening_enabled
                and isinstance(sink, SalesforceSink) and sink.takes_plain_records()):
            plain = sink
        self._plain_sinks[stream] = (maps, sink, plain)
        return plain

    def settle(self, *, forget_takers: bool = False) -> None:
        """Catch up every sink on the records it holds (:meth:`SalesforceSink.take`), before
        anything reads a sink's state; ``forget_takers`` when streams or sinks may change."""
        if forget_takers:
            self.message_reader.record_takers.clear()  # type: ignore[attr-defined]
        for sink in list(self._sinks_active.values()):
            if isinstance(sink, SalesforceSink):
                sink.catch_up()

    def _process_schema_message(self, message_dict: dict) -> None:
        self.settle(forget_takers=True)
        replaced = len(self._sinks_to_clear)
        super()._process_schema_message(message_dict)
        for sink in self._sinks_to_clear[replaced:]:
            self._drain_replaced(sink)

    def _drain_replaced(self, sink: Sink) -> None:
        """Load what a sink replaced by a new SCHEMA holds, now, and wait for it.

        The SDK keeps such a sink until the next full drain, while its successor takes the
        stream's next records: a successor that filled first would load them before the older
        ones (an older value of a key landing last), and children would not find parents
        waiting there (``drain_parents`` sees active sinks only).
        """
        self.drain_one(sink)
        if isinstance(sink, SalesforceSink):
            sink.wait_loads()
        self.check_failures()

    def _process_state_message(self, message_dict: dict) -> None:
        self.settle()
        super()._process_state_message(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.settle(forget_takers=True)
        super()._process_activate_version_message(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        self.settle(forget_takers=True)
        super()._process_batch_message(message_dict)
        self._check_failures()

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self._finish(raise_on_failures=True)

    def _finish(self, *, raise_on_failures: bool) -> None:
        self.tally.close()
        summary = self.tally.summary()
        calls = self.__dict__.get("client")
        if summary:
            self.logger.info("Load summary:\n%s", summary)
        if calls is not None:
            self.logger.info("Salesforce API calls used by this run: %d (%s)", calls.api_calls,
                             ", ".join(f"{k} {v}" for k, v in calls.calls_by_kind.items()))
        unbalanced = self.tally.unbalanced()
        if unbalanced:
            raise UnbalancedOutcomesError(
                "outcomes do not add up to the records received: " + ", ".join(
                    f"{name} received {got} but accounted {acc}"
                    for name, (got, acc) in unbalanced.items()))
        limit = int(self.config.get("max_failed_records") or 0)
        failed = self.tally.not_loaded
        if raise_on_failures and failed > limit:
            where = self.config.get("failed_records_path") or "the log"
            raise TooManyFailedRecordsError(
                f"{failed} record(s) did not load (max_failed_records is {limit}); see {where}.\n"
                f"{summary}")

    # -- termination -----------------------------------------------------------------------------

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Abort open jobs and exit without STATE for records whose outcome is unknown."""
        self.logger.warning(
            "Received signal %d: aborting open Bulk jobs and stopping; no STATE is written for "
            "records whose outcome is not known", signum)
        request_shutdown()
        abort_all_open_jobs()
        self.tally.flush()
        raise SystemExit(128 + signum)

    # -- command line ----------------------------------------------------------------------------

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:  # type: ignore[override]
        """Run the target; configuration and load failures end with a message, not a trace."""
        _tune_collector()
        try:
            cls._invoke(*args, **kwargs)
        except BaseException:
            # Stopping early, maybe with loads still running in the background: cut their
            # waits and abort their jobs now. Otherwise the interpreter waits for the load
            # threads to see their jobs finish before its exit handlers could abort anything.
            request_shutdown()
            abort_all_open_jobs()
            raise

    @classmethod
    def _invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        try:
            super().invoke(*args, **kwargs)
        except (ConfigError, TooManyFailedRecordsError, UnbalancedOutcomesError) as exc:
            cls.logger.error("%s", exc)
            sys.exit(1)
        except (SingerReadError, FatalSyncError, InvalidRecord, UnicodeDecodeError) as exc:
            # Input that is not a Singer stream (a line that is not JSON or not UTF-8, a RECORD
            # before its SCHEMA): one line naming the problem, not a traceback. Long lines are
            # cut.
            text = " ".join(str(exc).split())
            cls.logger.error("Invalid Singer input: %s", text[:300] + ("…" if len(text) > 300
                                                                       else ""))
            sys.exit(1)
        except SalesforceError as exc:
            cls.logger.error("Salesforce error: %s", exc)
            sys.exit(1)


if __name__ == "__main__":
    TargetSfBulk.cli()
