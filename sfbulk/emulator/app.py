"""The emulator's HTTP application: settings, shared state, middlewares and route assembly.

One :class:`EmulatorState` per emulated org holds everything the handlers share (the SQLite org,
sessions, fault switches, daily usage counters, the Bulk job engine). :func:`create_app` builds a
Starlette app around it: the protocol modules contribute routes, and three pure-ASGI middlewares
do what every Salesforce API does before a handler runs:

- a catch-all that turns any unexpected exception into the API's own 500 body (never a trace);
- fault injection (5xx answers, connections cut mid-body, ``REQUEST_LIMIT_EXCEEDED``);
- accounting: version check, session check, the daily API request allocation and the
  ``Sforce-Limit-Info: api-usage=N/M`` header.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sfbulk.emulator import faults as faults_module
from sfbulk.emulator.faults import Faults
from sfbulk.emulator.jobs import JobEngine
from sfbulk.emulator.sessions import SessionStore, bearer_token, bulk1_token

if TYPE_CHECKING:
    from sfbulk.emulator.store import Org

logger = logging.getLogger(__name__)

#: Namespace of every Bulk 1.0 XML body.
BULK1_NS = "http://www.force.com/2009/06/asyncapi/dataload"

#: The oldest and newest API versions the emulator serves (all with the same behaviour).
MIN_API_VERSION = 20
MAX_API_VERSION = 66

#: Limits reported by ``/limits`` that the emulator does not consume: name -> Max
#: (the keys of a real Developer Edition org's answer).
STATIC_LIMITS: dict[str, int] = {
    "AnalyticsExternalDataSizeMB": 40960,
    "BOZosCalloutHourlyLimit": 20000,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51200,
    "DailyAsyncApexExecutions": 250000,
    "DailyDurableGenericStreamingApiEvents": 10000,
    "DailyDurableStreamingApiEvents": 10000,
    "DailyEinsteinDataInsightsStoryCreation": 1000,
    "DailyEinsteinDiscoveryPredictAPICalls": 50000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyFunctionsApiCallLimit": 50000,
    "DailyGenericStreamingApiEvents": 10000,
    "DailyStandardVolumePlatformEvents": 10000,
    "DailyStreamingApiEvents": 10000,
    "DailyWorkflowEmails": 195,
    "DataStorageMB": 5,
    "DurableStreamingApiConcurrentClients": 20,
    "FileStorageMB": 20,
    "HourlyAsyncReportRuns": 1200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5000,
    "HourlyDashboardStatuses": 999999999,
    "HourlyLongTermIdMapping": 100000,
    "HourlyManagedContentPublicRequests": 50000,
    "HourlyODataCallout": 1000,
    "HourlyPublishedPlatformEvents": 50000,
    "HourlyPublishedStandardVolumePlatformEvents": 1000,
    "HourlyShortTermIdMapping": 100000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 50,
    "MassEmail": 10,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "MonthlyPlatformEventsUsageEntitlement": 0,
    "Package2VersionCreates": 6,
    "Package2VersionCreatesWithoutValidation": 500,
    "PermissionSets": 1500,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "SingleEmail": 15,
    "StreamingApiConcurrentClients": 20,
}

#: Counted limits (see :class:`Usage`).
DAILY_API_REQUESTS = "DailyApiRequests"
DAILY_BULK_API_BATCHES = "DailyBulkApiBatches"
DAILY_BULK_V2_QUERY_JOBS = "DailyBulkV2QueryJobs"
DAILY_BULK_V2_QUERY_STORAGE_MB = "DailyBulkV2QueryFileStorageMB"


@dataclass
class EmulatorSettings:
    """Everything configurable about one emulated org (CLI flags map onto these).

    The credential defaults are fixed, documented demo values (the org holds no real data), so
    printing them at start-up is intended.
    """

    host: str = "127.0.0.1"
    port: int = 0
    #: Oldest and newest API version served (``NN.0`` each), all with the same behaviour.
    min_api_version: int = MIN_API_VERSION
    max_api_version: int = MAX_API_VERSION
    #: Seconds a session stays valid after login.
    session_seconds: float = 7200
    #: ``DailyApiRequests`` Max: API calls (REST, Bulk 1.0, Bulk 2.0) per rolling 24 hours.
    api_daily_limit: int = 15000
    #: ``DailyBulkApiBatches`` Max, shared by Bulk 1.0 batches and Bulk 2.0 ingest jobs.
    bulk_batches_daily_limit: int = 15000
    #: ``DailyBulkV2QueryJobs`` Max.
    bulk2_query_jobs_daily_limit: int = 10000
    #: ``DailyBulkV2QueryFileStorageMB`` Max.
    bulk2_query_storage_mb: int = 976562
    #: Rows per Bulk 1.0 query result file (Salesforce splits at 1 GB; smaller here so that
    #: clients meet several result files without gigabytes of data).
    result_rows_per_file: int = 100_000
    #: Rows per Bulk 2.0 results page when the client gives no ``maxRecords``.
    bulk2_page_rows: int = 100_000
    #: Records per REST ``/query`` page (Salesforce's default batch size).
    query_page_size: int = 2000
    #: Seconds each batch waits before processing (the baseline of ``faults``'s delay).
    processing_delay: float = 0.0
    #: Worker threads processing Bulk batches.
    workers: int = 4
    username: str = "demo@example.com"
    password: str = "demo-password"  # noqa: S105 - documented demo credential
    security_token: str = ""
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"  # noqa: S105 - documented demo credential
    refresh_token: str = "demo-refresh-token"  # noqa: S105 - documented demo credential
    #: PEM text of the certificate (or bare public key) that verifies JWT bearer assertions;
    #: None disables the JWT grant.
    jwt_certificate: str | None = None
    #: Display data of the single user.
    user_full_name: str = "Demo User"
    user_email: str = "demo@example.com"
    organization_name: str = "sfbulk emulator"

    def __repr__(self) -> str:
        # Never print the credentials by accident (logs, tracebacks).
        return (
            f"EmulatorSettings(host={self.host!r}, port={self.port}, "
            f"username={self.username!r}, versions={self.min_api_version}.0-"
            f"{self.max_api_version}.0)"
        )

    @property
    def api_versions(self) -> list[str]:
        """Every served version, oldest first (``"20.0"`` … ``"66.0"``)."""
        return [f"{v}.0" for v in range(self.min_api_version, self.max_api_version + 1)]

    @property
    def latest_version(self) -> str:
        """The newest served version."""
        return f"{self.max_api_version}.0"


class LimitExceeded(Exception):
    """A counted daily allocation is spent.

    Attributes:
        limit: The ``/limits`` key (``DailyApiRequests``, ``DailyBulkApiBatches``, …).
        maximum: Its Max.
    """

    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(f"{limit} limit exceeded (Max {maximum} per 24 hours)")
        self.limit = limit
        self.maximum = maximum


class Usage:
    """Counters of the daily allocations the emulator enforces, over a rolling 24 hours.

    Consumption is kept in hourly buckets, so ``Remaining`` recovers as old hours fall out of
    the window, as on Salesforce, without keeping one entry per call.

    The Bulk modules call ``consume(DAILY_BULK_API_BATCHES)`` per batch (1.0) or ingest job
    (2.0) and ``consume(DAILY_BULK_V2_QUERY_JOBS)`` per query job; the accounting middleware
    consumes ``DailyApiRequests``.
    """

    WINDOW_SECONDS = 24 * 3600
    BUCKET_SECONDS = 3600

    def __init__(self, maxima: dict[str, int], clock: Callable[[], float] = time.time) -> None:
        self._maxima = dict(maxima)
        self._clock = clock
        self._buckets: dict[str, deque[list[int]]] = {name: deque() for name in maxima}
        self._lock = threading.Lock()

    def _prune(self, name: str, now: float) -> int:
        """Drop buckets older than the window; return the amount used inside it."""
        buckets = self._buckets[name]
        oldest = int(now // self.BUCKET_SECONDS) - self.WINDOW_SECONDS // self.BUCKET_SECONDS
        while buckets and buckets[0][0] <= oldest:
            buckets.popleft()
        return sum(amount for _, amount in buckets)

    def consume(self, name: str, amount: int = 1) -> int:
        """Use ``amount`` of the allocation ``name``.

        Returns:
            The amount used within the window, this use included.

        Raises:
            LimitExceeded: when the allocation cannot cover ``amount``; nothing is used then.
            KeyError: for a name that is not counted.
        """
        now = self._clock()
        with self._lock:
            used = self._prune(name, now)
            maximum = self._maxima[name]
            if used + amount > maximum:
                raise LimitExceeded(name, maximum)
            hour = int(now // self.BUCKET_SECONDS)
            buckets = self._buckets[name]
            if buckets and buckets[-1][0] == hour:
                buckets[-1][1] += amount
            else:
                buckets.append([hour, amount])
            return used + amount

    def used(self, name: str) -> int:
        """Amount of ``name`` used within the last 24 hours."""
        with self._lock:
            return self._prune(name, self._clock())

    def maximum(self, name: str) -> int:
        """The Max of ``name``."""
        return self._maxima[name]

    def remaining(self, name: str) -> int:
        """Max minus what was used within the last 24 hours (never negative)."""
        return max(0, self._maxima[name] - self.used(name))

    def exhausted(self, name: str) -> bool:
        """Whether nothing of ``name`` is left."""
        return self.remaining(name) <= 0

    def names(self) -> list[str]:
        """The counted allocations."""
        return list(self._maxima)

    def reset(self) -> None:
        """Forget all consumption (admin reset)."""
        with self._lock:
            for buckets in self._buckets.values():
                buckets.clear()


@dataclass
class EmulatorState:
    """Everything the handlers of one emulated org share (``request.app.state.emulator``).

    Attributes:
        org: The SQLite-backed org (records, catalog, user and org ids).
        settings: Configuration.
        sessions: Issued sessions and the refresh token's state.
        faults: Fault switches.
        usage: Daily allocations (``DailyApiRequests`` and the Bulk counters).
        jobs: The Bulk job engine (worker pool, ids, job registry).
        url: Base URL once the server is bound (``http://127.0.0.1:PORT``); handlers use it for
            ``instance_url`` and every absolute URL they print.
        org_factory: Rebuilds a fresh org for ``POST /_emulator/reset`` (None: reset keeps the
            records and only clears faults, usage and jobs).
    """

    org: Org
    settings: EmulatorSettings = field(default_factory=EmulatorSettings)
    sessions: SessionStore = field(init=False)
    faults: Faults = field(init=False)
    usage: Usage = field(init=False)
    jobs: JobEngine = field(init=False)
    url: str = ""
    org_factory: Callable[[], Org] | None = None
    started_at: float = field(default_factory=time.time)
    #: REST query cursors (``nextRecordsUrl``), kept by :mod:`sfbulk.emulator.rest`.
    query_locators: Any = field(init=False)

    def __post_init__(self) -> None:
        from sfbulk.emulator.rest import QueryLocators

        self.sessions = SessionStore(self.org.org_id, self.settings.session_seconds)
        self.faults = Faults(processing_delay_seconds=self.settings.processing_delay)
        self.usage = Usage(self._usage_maxima())
        self.jobs = JobEngine(self.settings.workers)
        self.query_locators = QueryLocators()
        self._lock = threading.Lock()

    def _usage_maxima(self) -> dict[str, int]:
        s = self.settings
        return {
            DAILY_API_REQUESTS: s.api_daily_limit,
            DAILY_BULK_API_BATCHES: s.bulk_batches_daily_limit,
            DAILY_BULK_V2_QUERY_JOBS: s.bulk2_query_jobs_daily_limit,
            DAILY_BULK_V2_QUERY_STORAGE_MB: s.bulk2_query_storage_mb,
        }

    def base_url(self) -> str:
        """The emulator's own base URL (falls back to host and port before binding)."""
        return self.url or f"http://{self.settings.host}:{self.settings.port}"

    def reset(self) -> None:
        """Back to a fresh start: no faults, no usage, no jobs, the refresh token valid again.

        With an ``org_factory`` the records are rebuilt too. Sessions stay valid, so a test can
        keep using its token after a reset.
        """
        with self._lock:
            self.faults.clear()
            self.usage.reset()
            self.sessions.restore_refresh_token()
            self.query_locators.clear()
            old_jobs = self.jobs
            self.jobs = JobEngine(self.settings.workers)
            old_jobs.shutdown(timeout=5)
            if self.org_factory is not None:
                old_org = self.org
                self.org = self.org_factory()
                closer = getattr(old_org, "close", None)
                if callable(closer):
                    closer()

    def close(self) -> None:
        """Stop the workers and release result files (the server is shutting down)."""
        self.jobs.shutdown(timeout=5)


# ---------------------------------------------------------------------------------------------
# Error bodies in each API's own form


def rest_error_body(code: str, message: str) -> bytes:
    """``[{"message":…,"errorCode":…}]``, the REST and Bulk 2.0 error form."""
    return json.dumps([{"message": message, "errorCode": code}], separators=(",", ":")).encode()


def bulk1_wants_json(scope_headers: dict[str, str]) -> bool:
    """Whether a Bulk 1.0 request that failed before reaching its job should get JSON.

    Without a job, Bulk 1.0 answers in the format of the request body (``Content-Type``), as it
    does for job creation.
    """
    content_type = scope_headers.get("content-type", "")
    accept = scope_headers.get("accept", "")
    return "json" in content_type.lower() or (
        not content_type and "json" in accept.lower() and "xml" not in accept.lower()
    )


def bulk1_error_body(code: str, message: str, as_json: bool) -> tuple[bytes, str]:
    """A Bulk 1.0 ``error`` body and its content type."""
    if as_json:
        body = json.dumps(
            {"exceptionCode": code, "exceptionMessage": message}, separators=(",", ":")
        )
        return body.encode(), "application/json"
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><error\n'
        f'   xmlns="{BULK1_NS}">\n'
        f" <exceptionCode>{escape(code)}</exceptionCode>\n"
        f" <exceptionMessage>{escape(message)}</exceptionMessage>\n"
        "</error>"
    )
    return xml.encode(), "application/xml"


# ---------------------------------------------------------------------------------------------
# Request classification

_DATA_VERSION = re.compile(r"^/services/data/v(?P<version>[^/]*)(?:/|$)")
_VERSION_TEXT = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)$")

REST = "rest"  # REST and Bulk 2.0: /services/data/vNN.N/…
BULK1 = "bulk1"  # Bulk 1.0: /services/async/…
OTHER = "other"  # OAuth, SOAP, identity, versions list, admin


def classify(path: str) -> str:
    """Which API a path belongs to, for auth and accounting."""
    if _DATA_VERSION.match(path):
        return REST
    if path.startswith("/services/async/"):
        return BULK1
    return OTHER


def served_version(settings: EmulatorSettings, text: str) -> tuple[int, str | None]:
    """Check a ``vNN.N`` path version.

    Returns:
        ``(200, "NN.0")`` when served, ``(410, None)`` for versions older than the oldest
        served (retired), ``(404, None)`` for anything else.
    """
    match = _VERSION_TEXT.match(text)
    if not match or match["minor"] != "0" or len(match["major"]) > 3:
        return 404, None
    major = int(match["major"])
    if major < settings.min_api_version:
        return 410, None
    if major > settings.max_api_version:
        return 404, None
    return 200, f"{major}.0"


def _headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_simple(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_api_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with an error in the form of the API the path belongs to.

    REST/Bulk 2.0 get the JSON array, Bulk 1.0 the ``error`` element (XML or JSON after the
    request), everything else the REST form as well.
    """
    if classify(scope["path"]) == BULK1:
        bulk1_status = 400 if status in (401, 403) else status
        body, content_type = bulk1_error_body(
            _BULK1_CODES.get(code, code), message, bulk1_wants_json(_headers_of(scope))
        )
        await _send_simple(send, bulk1_status, body, content_type, extra)
        return
    await _send_simple(send, status, rest_error_body(code, message), "application/json", extra)


#: REST error codes and their Bulk 1.0 exception codes.
_BULK1_CODES = {
    "INVALID_SESSION_ID": "InvalidSessionId",
    "REQUEST_LIMIT_EXCEEDED": "ExceededQuota",
    "UNKNOWN_EXCEPTION": "InternalServerError",
    "SERVER_UNAVAILABLE": "InternalServerError",
    "NOT_FOUND": "InvalidUrl",
}

#: Message of a refused call once ``DailyApiRequests`` is spent.
TOTAL_REQUESTS_EXCEEDED = "TotalRequests Limit exceeded."
#: Message of the 401 / InvalidSessionId answers.
SESSION_INVALID = "Session expired or invalid"


# ---------------------------------------------------------------------------------------------
# Middlewares (pure ASGI, so streaming bodies pass through untouched)


class CatchAllMiddleware:
    """Turn any unexpected exception into the API's 500 body; log it, never send the trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            if started:
                # Part of the answer is out already: all that is left is to cut the connection.
                return
            error_id = f"{int(time.time() * 1000) % 10**10:010d}"
            await send_api_error(
                scope,
                send,
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact "
                f"support: {error_id[:7]}-{error_id[7:]} (-{error_id[:9]})",
            )


class FaultMiddleware:
    """Inject the per-request faults set in ``state.faults``."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.state.faults.request_fault(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        logger.info("injecting %s into %s %s", rule.kind, scope["method"], scope["path"])
        if rule.kind == faults_module.HTTP_500:
            await send_api_error(
                scope,
                send,
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact "
                "support: 1234567-89012 (-123456789)",
            )
        elif rule.kind == faults_module.HTTP_503:
            await send_api_error(
                scope,
                send,
                503,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable. Please try again later.",
                [(b"retry-after", b"1")],
            )
        elif rule.kind == faults_module.REQUEST_LIMIT_EXCEEDED:
            await send_api_error(
                scope, send, 403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS_EXCEEDED
            )
        else:
            await self._drop_mid_body(scope, receive, send, rule.after_bytes)

    async def _drop_mid_body(
        self, scope: Scope, receive: Receive, send: Send, after_bytes: int
    ) -> None:
        """Serve the request, but send only ``after_bytes`` of the body, then cut the connection.

        Returning from the ASGI call with the response unfinished makes uvicorn close the
        transport; the client sees its read end early (an incomplete body).
        """
        sent = 0
        cut = False

        class _Cut(Exception):
            pass

        async def cutting_send(message: Message) -> None:
            nonlocal sent, cut
            if cut:
                raise _Cut
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            allowed = after_bytes - sent
            if more and len(body) < allowed:
                sent += len(body)
                await send(message)
                return
            # Cut inside this part; of the final part keep at least one byte back.
            room = max(0, min(allowed, len(body) if more else len(body) - 1))
            if room:
                await send({"type": "http.response.body", "body": body[:room], "more_body": True})
            cut = True
            raise _Cut

        try:
            await self.app(scope, receive, cutting_send)
        except _Cut:
            return


class AccountingMiddleware:
    """Version and session checks, the daily request allocation and ``Sforce-Limit-Info``.

    For REST and Bulk 2.0 paths an unknown version is refused (404, or 410 when retired) and a
    missing or expired session gets ``401 INVALID_SESSION_ID``. Bulk 1.0 requests pass on with
    or without a session (the Bulk 1.0 handlers answer ``InvalidSessionId`` in the job's format).
    Every API call with a live session consumes one ``DailyApiRequests``; when none is left the
    call is refused with ``REQUEST_LIMIT_EXCEEDED``. Counted answers carry
    ``Sforce-Limit-Info: api-usage=N/M`` (plain, without the per-app part that some clients'
    anchored regular expressions cannot read).
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = classify(scope["path"])
        if kind == OTHER:
            await self.app(scope, receive, send)
            return
        state = self.state
        if kind == REST:
            match = _DATA_VERSION.match(scope["path"])
            assert match is not None
            status, _ = served_version(state.settings, match["version"])
            if status == 404:
                await send_api_error(
                    scope, send, 404, "NOT_FOUND", "The requested resource does not exist"
                )
                return
            if status == 410:
                await send_api_error(
                    scope, send, 410, "GONE", "The requested resource is no longer available"
                )
                return
        from starlette.requests import Request

        request = Request(scope)
        token = bearer_token(request) if kind == REST else bulk1_token(request)
        session = state.sessions.check(token)
        if session is None:
            if kind == REST:
                await send_api_error(scope, send, 401, "INVALID_SESSION_ID", SESSION_INVALID)
                return
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        try:
            used = state.usage.consume(DAILY_API_REQUESTS)
        except LimitExceeded:
            maximum = state.usage.maximum(DAILY_API_REQUESTS)
            header = (b"sforce-limit-info", f"api-usage={maximum}/{maximum}".encode())
            await send_api_error(
                scope, send, 403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS_EXCEEDED, [header]
            )
            return
        if state.faults.count_api_call():
            # This call is served; the next one meets expired sessions.
            state.sessions.expire_all()
        limit_header = (
            b"sforce-limit-info",
            f"api-usage={used}/{state.usage.maximum(DAILY_API_REQUESTS)}".encode(),
        )

        async def send_with_usage(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), limit_header]
            await send(message)

        await self.app(scope, receive, send_with_usage)


# ---------------------------------------------------------------------------------------------
# The application


def protocol_routes() -> list[BaseRoute]:
    """Routes of every protocol module, most specific first.

    Bulk 2.0 lives under ``/services/data/vNN.N/jobs`` and must precede the REST catch-alls;
    the admin endpoints are part of :mod:`sfbulk.emulator.rest`.
    """
    from sfbulk.emulator import oauth, rest

    routes: list[BaseRoute] = [*oauth.routes()]
    # The Bulk modules are built alongside this one; mount each once it is importable.
    for name in ("bulk2", "bulk1"):
        if importlib.util.find_spec(f"sfbulk.emulator.{name}") is not None:
            module = importlib.import_module(f"sfbulk.emulator.{name}")
            if hasattr(module, "routes"):
                routes.extend(module.routes())
    routes.extend(rest.routes())
    return routes


def create_app(state: EmulatorState) -> Starlette:
    """Build the emulator's Starlette app around ``state``."""
    app = Starlette(
        routes=protocol_routes(),
        middleware=[
            Middleware(CatchAllMiddleware),
            Middleware(FaultMiddleware, state=state),
            Middleware(AccountingMiddleware, state=state),
        ],
    )
    app.state.emulator = state
    return app
