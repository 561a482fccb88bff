"""One resilient, thread-safe HTTP client for Salesforce REST, Bulk API 1.0 and Bulk API 2.0.

Everything that talks to an org goes through :class:`SalesforceClient`, so the rules that keep a
long run alive live here once:

- **Per-request credentials.** Headers are built for every attempt from the current token
  (``Authorization: Bearer`` for REST and Bulk 2.0, ``X-SFDC-Session`` for Bulk 1.0), so a retry or
  a request issued after another thread renewed the session carries the new token.
- **One re-login.** A request refused for an invalid or expired session (REST/2.0: 401
  ``INVALID_SESSION_ID``; 1.0: 400 ``InvalidSessionId``) makes the client renew the session through
  :meth:`SalesforceAuth.refresh` (which logs in once however many threads ask) and retry once.
- **Bounded retries.** Connection failures (including a connection dropped mid-body), HTTP 5xx, 429
  and ``REQUEST_LIMIT_EXCEEDED`` are retried with exponential backoff and full jitter (the
  ``backoff`` module), bounded in attempts and total time, then :class:`RetryExhaustedError`. A
  request that is not idempotent (creating a job, adding a batch, uploading data) is retried only
  when Salesforce certainly did not act on it (connection never made, 429, 503,
  ``REQUEST_LIMIT_EXCEEDED``), because a blind retry could load the same records twice.
- **One error mapping.** :func:`error_from_response` turns every failed response (REST/2.0 error
  arrays, Bulk 1.0 XML/JSON ``exceptionCode``, OAuth ``error``/``error_description``, SOAP faults)
  into a typed :class:`SalesforceError` carrying code, message, status, method, path, job and batch.
- **Usage accounting.** Every call is counted (total and per kind), ``Sforce-Limit-Info`` is parsed
  from responses, :meth:`SalesforceClient.limits` reads ``/limits`` and
  :meth:`SalesforceClient.check_api_budget` refuses to start work once a configured share of the
  daily allocation is spent.
- **Restartable downloads.** :meth:`SalesforceClient.download` spools a response body (one result
  page or file) to a bounded in-memory buffer that spills to disk, inside the retry loop: a
  connection dropped halfway through a page restarts that page, and the caller only ever parses a
  complete page.

It also keeps the registry of open Bulk jobs (:class:`OpenJobs`) that an exit handler aborts, so no
job is left open when a process is interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import logging
import re
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import backoff
import defusedxml.ElementTree as safe_et
import requests
from requests.adapters import HTTPAdapter

from sfbulk.errors import (
    ApiLimitError,
    AuthenticationError,
    OperationCancelledError,
    RetryExhaustedError,
    SalesforceError,
)

if TYPE_CHECKING:
    from sfbulk.auth import SalesforceAuth

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Default Salesforce API version (Winter '25); every request of a client uses the same one.
DEFAULT_API_VERSION = "62.0"
#: Namespace of Bulk API 1.0 XML bodies.
ASYNC_NS = "http://www.force.com/2009/06/asyncapi/dataload"
#: Kinds of call, for per-kind accounting and for choosing the session header.
KINDS = ("rest", "bulk1", "bulk2")
#: Bytes of a downloaded page kept in memory before it spills to a temporary file.
DEFAULT_SPOOL_BYTES = 8 * 1024 * 1024

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_JOB_IN_PATH = re.compile(r"/(?:job|jobs/ingest|jobs/query)/([A-Za-z0-9]{15,18})(?:/|$)")
_BATCH_IN_PATH = re.compile(r"/batch/([A-Za-z0-9]{15,18})(?:/|$)")
_SESSION_CODES = frozenset({"INVALID_SESSION_ID", "InvalidSessionId"})
_LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that say the server did not act on the request, so even a non-idempotent one may repeat.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PATCH"})
_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.Timeout,
)


# --------------------------------------------------------------------------------------------
# URL rules shared with auth


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` names this machine (127.0.0.0/8, ::1 or localhost)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_allowed(url: str) -> bool:
    """Tell whether ``url`` may carry credentials: https anywhere, plain http only on loopback."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback_host(parts.hostname)


# --------------------------------------------------------------------------------------------
# Error mapping: the one place a failed response becomes a typed error


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_error(text: str) -> tuple[str | None, str | None]:
    """Read ``exceptionCode``/``exceptionMessage`` (Bulk 1.0) or a SOAP fault from XML."""
    try:
        root = safe_et.fromstring(text)
    except Exception:
        return None, None
    code = message = None
    for element in root.iter():
        name = _strip_ns(element.tag)
        if name in ("exceptionCode", "faultcode") and code is None:
            code = (element.text or "").strip()
        elif name in ("exceptionMessage", "faultstring") and message is None:
            message = (element.text or "").strip()
    if code and ":" in code and _strip_ns(root.tag) == "Envelope":
        code = code.split(":", 1)[1]  # sf:INVALID_LOGIN -> INVALID_LOGIN
    return code, message


def parse_error_body(text: str) -> tuple[str | None, str | None, list[str]]:
    """Extract ``(code, message, fields)`` from any error body form Salesforce sends.

    Handles REST/Bulk 2.0 arrays (``[{"errorCode","message","fields"}]``), Bulk 1.0 JSON
    (``{"exceptionCode","exceptionMessage"}``) and XML (``<error><exceptionCode>…``), OAuth
    (``{"error","error_description"}``) and SOAP faults. Unknown forms give ``(None, None, [])``.
    """
    stripped = text.strip()
    if not stripped:
        return None, None, []
    if stripped[0] in "[{":
        try:
            body = json.loads(stripped)
        except ValueError:
            body = None
        if isinstance(body, list) and body and isinstance(body[0], dict):
            first = body[0]
            messages = [str(item.get("message", "")) for item in body if isinstance(item, dict)]
            fields = first.get("fields") or []
            return (
                first.get("errorCode") or first.get("statusCode"),
                "; ".join(m for m in messages if m) or None,
                [str(f) for f in fields] if isinstance(fields, list) else [],
            )
        if isinstance(body, dict):
            if "exceptionCode" in body:
                return body.get("exceptionCode"), body.get("exceptionMessage"), []
            if "error" in body:
                return body.get("error"), body.get("error_description"), []
            if "errorCode" in body:
                return body.get("errorCode"), body.get("message"), []
        return None, None, []
    if stripped.startswith("<"):
        code, message = _xml_error(stripped)
        return code, message, []
    return None, None, []


def ids_from_path(path: str) -> tuple[str | None, str | None]:
    """Find the Bulk job and batch ids a request path names, for error context."""
    job = _JOB_IN_PATH.search(path)
    batch = _BATCH_IN_PATH.search(path)
    return (job.group(1) if job else None, batch.group(1) if batch else None)


def error_from_response(
    response: requests.Response,
    *,
    method: str | None = None,
    path: str | None = None,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> SalesforceError:
    """Map a failed response to the typed error that describes it.

    Args:
        response: The response with an error status.
        method: The request method (defaults to the response's request).
        path: The request path without host or query (defaults to the response's URL path).
        job_id: The Bulk job the request concerns (found in the path when not given).
        batch_id: The Bulk 1.0 batch the request concerns (found in the path when not given).

    Returns:
        :class:`AuthenticationError` for refused sessions and OAuth failures,
        :class:`ApiLimitError` for ``REQUEST_LIMIT_EXCEEDED``, else :class:`SalesforceError`.
    """
    if method is None and response.request is not None:
        method = response.request.method
    if path is None:
        path = urlsplit(response.url or "").path
    path_job, path_batch = ids_from_path(path or "")
    try:
        text = response.text
    except Exception:
        text = ""
    code, message, fields = parse_error_body(text)
    if message is None:
        snippet = " ".join(text.split())[:300]
        message = snippet or response.reason or "request failed"
    context: dict[str, Any] = {
        "code": code,
        "status": response.status_code,
        "method": method,
        "path": path,
        "job_id": job_id or path_job,
        "batch_id": batch_id or path_batch,
        "fields": fields,
    }
    is_oauth = bool(path and path.endswith("/oauth2/token"))
    if response.status_code == 401 or code in _SESSION_CODES or is_oauth:
        return AuthenticationError(message, **context)
    if code in _LIMIT_CODES:
        return ApiLimitError(message, **context)
    return SalesforceError(message, **context)


def is_session_refused(error: SalesforceError) -> bool:
    """Tell whether ``error`` means the session token was refused (renew it and retry once)."""
    if error.code in _SESSION_CODES:
        return True
    path = error.path or ""
    return error.status == 401 and not path.endswith("/oauth2/token")


def is_transient(error: SalesforceError) -> bool:
    """Tell whether a mapped error is worth retrying after a pause."""
    return error.status in _RETRY_STATUSES or error.code in _LIMIT_CODES


def _not_processed(error: BaseException) -> bool:
    """Tell whether a failure proves the server did not act on the request."""
    if isinstance(error, SalesforceError):
        return error.status in _NOT_PROCESSED_STATUSES or error.code in _LIMIT_CODES
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        text = repr(error.args[0]) if error.args else ""
        return "NewConnectionError" in text or "Connection refused" in text
    return False


def describe_failure(error: BaseException) -> str:
    """A short, secret-free description of a failure for messages and logs."""
    if isinstance(error, SalesforceError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How persistent a client is with transient failures.

    Attributes:
        max_retries: Retries after the first attempt (so ``max_retries + 1`` attempts at most).
        max_seconds: Total time across attempts and waits after which no retry starts.
        backoff_factor: Upper bound of the first wait; each later bound doubles (full jitter).
        backoff_max: Cap of any single wait's upper bound.
    """

    max_retries: int = 5
    max_seconds: float = 300.0
    backoff_factor: float = 1.0
    backoff_max: float = 60.0


class _Transient(Exception):
    """Internal carrier: the wrapped failure may be retried."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(describe_failure(error))
        self.error = error


def run_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], T],
    *,
    describe: str,
    context: Mapping[str, Any],
) -> T:
    """Run ``attempt`` until it succeeds, retrying failures it raises as :class:`_Transient`.

    Args:
        policy: Bounds on attempts and time.
        attempt: One try; raises ``_Transient(error)`` for a retryable failure.
        describe: ``"GET /path"`` for messages.
        context: Error context (method, path, job_id, batch_id) for :class:`RetryExhaustedError`.

    Returns:
        What the successful attempt returned.

    Raises:
        RetryExhaustedError: Every allowed attempt failed transiently.
    """
    tries = 0
    started = time.monotonic()

    def counted() -> T:
        nonlocal tries
        tries += 1
        return attempt()

    def log_backoff(details: Any) -> None:
        logger.warning(
            "%s failed (%s); retry %d of %d in %.2f s",
            describe,
            details["exception"] if "exception" in details else "transient failure",
            details["tries"],
            policy.max_retries,
            details["wait"],
        )

    wrapped = backoff.on_exception(
        backoff.expo,
        _Transient,
        max_tries=policy.max_retries + 1,
        max_time=policy.max_seconds,
        jitter=backoff.full_jitter,
        on_backoff=log_backoff,
        logger=None,
        factor=policy.backoff_factor,
        max_value=policy.backoff_max,
    )(counted)
    try:
        return wrapped()
    except _Transient as exc:
        elapsed = time.monotonic() - started
        last = exc.error
        raise RetryExhaustedError(
            f"gave up after {tries} attempt(s) in {elapsed:.1f} s; last error: "
            f"{describe_failure(last)}",
            attempts=tries,
            last_error=last,
            code=getattr(last, "code", None),
            status=getattr(last, "status", None),
            **context,
        ) from last


# --------------------------------------------------------------------------------------------
# Shutdown and the registry of open jobs

_shutdown = threading.Event()
_registries: weakref.WeakSet[OpenJobs] = weakref.WeakSet()
_registries_lock = threading.Lock()
_handlers_installed = False


def shutdown_requested() -> bool:
    """Tell whether the process is shutting down (waits stop and jobs get aborted)."""
    return _shutdown.is_set()


def request_shutdown() -> None:
    """Ask every wait on a Bulk job to stop so its job is aborted (called on SIGTERM and exit)."""
    _shutdown.set()


def abort_all_open_jobs() -> int:
    """Abort every job still registered by any client; return how many aborts were attempted."""
    with _registries_lock:
        registries = list(_registries)
    return sum(registry.abort_all() for registry in registries)


def _at_exit() -> None:
    request_shutdown()
    abort_all_open_jobs()


def _on_sigterm(signum: int, frame: Any) -> None:
    """Default SIGTERM behaviour while jobs are open: unwind (finally blocks abort), then exit."""
    request_shutdown()
    raise SystemExit(128 + signum)


def _install_exit_handlers() -> None:
    """Register the exit handler once, and a SIGTERM handler unless the program set its own.

    The Singer SDK installs a SIGTERM handler that calls ``sys.exit``; we never replace such a
    handler: its ``SystemExit`` unwinds through our context managers and then ``atexit`` runs.
    """
    global _handlers_installed
    with _registries_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)


class OpenJobs:
    """The Bulk jobs a client has opened and not yet closed, aborted or finished.

    Job code registers a job right after creating it and unregisters it once the job is closed,
    aborted or known to be terminal. Anything still registered when the process exits (normally,
    on an unhandled exception, on SIGTERM or Ctrl-C) is aborted by :func:`abort_all_open_jobs`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[str, Callable[[], object]]] = {}
        with _registries_lock:
            _registries.add(self)
        _install_exit_handlers()

    def register(self, job_id: str, kind: str, abort: Callable[[], object]) -> None:
        """Remember an open job and how to abort it."""
        with self._lock:
            self._jobs[job_id] = (kind, abort)

    def unregister(self, job_id: str) -> None:
        """Forget a job that was closed, aborted or finished."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def ids(self) -> list[str]:
        """Ids of the jobs still open."""
        with self._lock:
            return list(self._jobs)

    def abort_all(self) -> int:
        """Abort every registered job, logging (not raising) failures; return the count tried."""
        with self._lock:
            jobs = list(self._jobs.items())
            self._jobs.clear()
        for job_id, (kind, abort) in jobs:
            try:
                abort()
                logger.warning("Aborted open %s job %s on exit", kind, job_id)
            except Exception as exc:
                logger.error("Could not abort %s job %s on exit: %s", kind, job_id, exc)
        return len(jobs)


# --------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True)
class Download:
    """A fully received response body, spooled to memory or disk.

    Attributes:
        body: Binary file positioned at 0; close it when done (``with download:``).
        headers: The response headers (case-insensitive names).
        status: The HTTP status.
        size: Body size in bytes.
    """

    body: IO[bytes]
    headers: Mapping[str, str]
    status: int
    size: int

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.body.close()


class SalesforceClient:
    """A thread-safe session with one org: retries, re-login, error mapping and usage tracking.

    Args:
        auth: Supplies the access token and instance URL and renews them.
        api_version: API version for every path (``"62.0"``; ``v`` prefix accepted).
        timeout: ``(connect, read)`` seconds per request.
        max_retries: Retries of a transient failure after the first attempt.
        max_retry_seconds: Total time after which no further retry starts.
        max_api_share: Share (0 to 1) of the daily API allocation the org may have used before
            :meth:`check_api_budget` refuses to start more work; ``None`` disables the check.
        pool_size: Connections kept per host; at least the number of threads sharing the client.
        backoff_factor: Upper bound in seconds of the first retry wait (doubling after).
        backoff_max: Cap in seconds of any single retry wait.
        session: A ``requests.Session`` to use (tests mount adapters on it); one is made otherwise.
    """

    def __init__(
        self,
        auth: SalesforceAuth,
        api_version: str = DEFAULT_API_VERSION,
        timeout: tuple[float, float] = (30.0, 300.0),
        max_retries: int = 5,
        max_retry_seconds: float = 300.0,
        max_api_share: float | None = None,
        *,
        pool_size: int = 16,
        backoff_factor: float = 1.0,
        backoff_max: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        version = str(api_version).lstrip("vV")
        if not re.fullmatch(r"\d{2,3}\.0", version):
            raise ValueError(f"api_version must look like '62.0', got {api_version!r}")
        if max_api_share is not None and not 0 < max_api_share <= 1:
            raise ValueError("max_api_share must be in (0, 1]")
        self.auth = auth
        self.api_version = version
        self.timeout = timeout
        self.max_api_share = max_api_share
        self.retry_policy = RetryPolicy(
            max_retries=max_retries,
            max_seconds=max_retry_seconds,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
        )
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        if session is None:
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        self._session.verify = True
        self._session.headers["User-Agent"] = "sfbulk/0.1"
        self._session.headers["Sforce-Call-Options"] = "client=sfbulk"
        self._counter_lock = threading.Lock()
        self._calls: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._api_usage: tuple[int, int] | None = None
        self.open_jobs = OpenJobs()

    def __repr__(self) -> str:
        return (
            f"SalesforceClient(auth={self.auth!r}, api_version={self.api_version!r}, "
            f"api_calls={self.api_calls})"
        )

    # ----------------------------------------------------------------------------- accounting

    @property
    def api_calls(self) -> int:
        """Requests sent to the org by this client (each attempt counts, as Salesforce counts)."""
        with self._counter_lock:
            return sum(self._calls.values())

    @property
    def calls_by_kind(self) -> dict[str, int]:
        """Requests sent, per kind (``rest``, ``bulk1``, ``bulk2``)."""
        with self._counter_lock:
            return dict(self._calls)

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """Latest ``(used, allocation)`` of daily API requests seen, or ``None`` if unknown."""
        with self._counter_lock:
            return self._api_usage

    def _count(self, kind: str) -> None:
        with self._counter_lock:
            self._calls[kind] = self._calls.get(kind, 0) + 1

    def _track_usage(self, response: requests.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info")
        if not info:
            return
        match = _LIMIT_INFO.search(info)
        if match:
            with self._counter_lock:
                self._api_usage = (int(match.group(1)), int(match.group(2)))

    def limits(self) -> dict[str, Any]:
        """Read ``/limits`` and update the known API usage from ``DailyApiRequests``."""
        body = self.rest("GET", "/limits").json()
        daily = body.get("DailyApiRequests") or {}
        if "Max" in daily and "Remaining" in daily:
            cap = int(daily["Max"])
            with self._counter_lock:
                self._api_usage = (cap - int(daily["Remaining"]), cap)
        return body

    def check_api_budget(self) -> tuple[int, int] | None:
        """Refuse to start more work once the configured share of the daily allocation is used.

        Call it before each job. Uses the latest ``Sforce-Limit-Info`` seen, or reads ``/limits``
        when none was seen yet.

        Returns:
            The ``(used, allocation)`` pair the decision was based on (``None`` when disabled).

        Raises:
            ApiLimitError: ``used >= max_api_share * allocation``.
        """
        if self.max_api_share is None:
            return None
        usage = self.api_usage
        if usage is None:
            self.limits()
            usage = self.api_usage
        if usage is None:
            logger.warning("The org reported no DailyApiRequests usage; budget not checked")
            return None
        used, cap = usage
        if cap > 0 and used >= self.max_api_share * cap:
            raise ApiLimitError(
                f"{used} of {cap} daily API requests are used, at or above the configured "
                f"share {self.max_api_share:.0%}; stopping before starting more work",
                code="API_BUDGET_EXHAUSTED",
            )
        return usage

    # ----------------------------------------------------------------------------- requests

    def rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """REST call; ``path`` is relative to ``/services/data/vNN.0`` (e.g. ``/limits``)."""
        return self.request(method, path, kind="rest", **kwargs)

    def bulk1(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Bulk 1.0 call; ``path`` is relative to ``/services/async/NN.0`` (e.g. ``/job``)."""
        return self.request(method, path, kind="bulk1", **kwargs)

    def bulk2(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Bulk 2.0 call; ``path`` is relative to ``/services/data/vNN.0/jobs``."""
        return self.request(method, path, kind="bulk2", **kwargs)

    def url_for(self, kind: str, path: str, instance_url: str | None = None) -> str:
        """Absolute URL of ``path`` for a call kind on the current (or given) instance.

        ``path`` may also start with ``/services/`` (used as is) or be an absolute URL on the
        instance host (e.g. a ``nextRecordsUrl``); URLs on other hosts are refused so the session
        token never leaves the org.
        """
        instance = (instance_url or self.auth.session()[1]).rstrip("/")
        if path.startswith(("https://", "http://")):
            if urlsplit(path).netloc != urlsplit(instance).netloc:
                raise SalesforceError(
                    "refusing to send the session to a host other than the instance",
                    path=urlsplit(path).path,
                )
            return path
        return instance + self.path_for(kind, path)

    def path_for(self, kind: str, path: str) -> str:
        """The server path for a call kind: ``/job`` is ``/services/async/62.0/job`` in 1.0."""
        if path.startswith(("https://", "http://")):
            return urlsplit(path).path
        if not path.startswith("/"):
            path = "/" + path
        if path.startswith("/services/"):
            return path
        if kind == "bulk1":
            return f"/services/async/{self.api_version}{path}"
        if kind == "bulk2":
            return f"/services/data/v{self.api_version}/jobs{path}"
        return f"/services/data/v{self.api_version}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        kind: str = "rest",
        params: Mapping[str, Any] | None = None,
        data: bytes | str | IO[bytes] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        job_id: str | None = None,
        batch_id: str | None = None,
        idempotent: bool | None = None,
        consume: Callable[[requests.Response], T] | None = None,
    ) -> Any:
        """Send one logical request with re-login, retries and error mapping.

        Args:
            method: HTTP method.
            path: Path relative to the kind's base (see :meth:`url_for`).
            kind: ``rest``, ``bulk1`` or ``bulk2``: the base path and the session header.
            params: Query parameters.
            data: Body bytes/text, or a seekable binary file (rewound before each attempt).
            json_body: A body to send as JSON (``Content-Type: application/json``).
            headers: Extra headers (never put credentials here; the client adds them).
            job_id: Bulk job id for error messages (else found in the path).
            batch_id: Bulk 1.0 batch id for error messages (else found in the path).
            idempotent: Whether repeating the request is harmless. Defaults by method (GET, HEAD,
                DELETE, PATCH yes; POST, PUT no). Non-idempotent requests are retried only when
                the server certainly did not act on them.
            consume: Reads the streamed response inside the retry loop and returns the result;
                a connection dropped while reading retries the whole request. Without it the
                body is read fully before returning.

        Returns:
            The ``requests.Response`` (body already read), or what ``consume`` returned.

        Raises:
            SalesforceError: Mapped failure (see :func:`error_from_response`).
            AuthenticationError: The session was refused again after renewing it.
            RetryExhaustedError: Transient failures outlasted the retry policy.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown call kind {kind!r}")
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        req_headers: dict[str, str] = dict(headers or {})
        body: Any = data
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            req_headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        display_path = self.path_for(kind, path).split("?", 1)[0]
        path_job, path_batch = ids_from_path(display_path)
        context: dict[str, Any] = {
            "method": method,
            "path": display_path,
            "job_id": job_id or path_job,
            "batch_id": batch_id or path_batch,
        }
        describe = f"{method} {display_path}"

        def send_once(token: str, instance: str) -> requests.Response:
            url = self.url_for(kind, path, instance)
            hdrs = dict(req_headers)
            if kind == "bulk1":
                hdrs["X-SFDC-Session"] = token
            else:
                hdrs["Authorization"] = f"Bearer {token}"
            if hasattr(body, "seek"):
                body.seek(0)
            self._count(kind)
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=hdrs,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException as exc:
                if idempotent or _not_processed(exc):
                    raise _Transient(exc) from exc
                raise SalesforceError(
                    f"connection failed and the outcome is unknown, so the request was not "
                    f"repeated: {describe_failure(exc)}",
                    **context,
                ) from exc
            self._track_usage(response)
            logger.debug("%s -> HTTP %s", describe, response.status_code)
            return response

        def attempt() -> Any:
            token, instance = self.auth.session()
            response = send_once(token, instance)
            if response.status_code >= 400:
                error = self._map_error(response, context)
                if is_session_refused(error):
                    logger.info("%s: session refused (%s); renewing it", describe, error.code)
                    token, instance = self.auth.refresh(token)
                    response = send_once(token, instance)
                    if response.status_code >= 400:
                        error = self._map_error(response, context)
                        if is_session_refused(error):
                            raise AuthenticationError(
                                "the session was refused again right after renewing it: "
                                + error.message,
                                code=error.code,
                                status=error.status,
                                **context,
                            )
                if response.status_code >= 400:
                    if is_transient(error) and (idempotent or _not_processed(error)):
                        raise _Transient(error)
                    raise error
            try:
                if consume is not None:
                    return consume(response)
                _ = response.content  # read it all here, so a dropped body is retried
                return response
            except _STREAM_ERRORS as exc:
                response.close()
                if idempotent:
                    raise _Transient(exc) from exc
                raise SalesforceError(
                    f"connection dropped while reading the response: {describe_failure(exc)}",
                    status=response.status_code,
                    **context,
                ) from exc

        return run_with_retries(self.retry_policy, attempt, describe=describe, context=context)

    @staticmethod
    def _map_error(response: requests.Response, context: Mapping[str, Any]) -> SalesforceError:
        try:
            return error_from_response(
                response,
                method=context["method"],
                path=context["path"],
                job_id=context["job_id"],
                batch_id=context["batch_id"],
            )
        finally:
            response.close()

    def download(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        chunk_bytes: int = 256 * 1024,
        **kwargs: Any,
    ) -> Download:
        """Receive a whole response body into a spooled file, restarting on a dropped connection.

        The body is decoded (gzip) and kept in memory up to ``spool_bytes``, then on disk, so a
        page of any size is held without exhausting memory and parsed only once complete.
        """

        def spool(response: requests.Response) -> Download:
            buffer = tempfile.SpooledTemporaryFile(max_size=spool_bytes)
            size = 0
            try:
                for chunk in response.iter_content(chunk_bytes):
                    buffer.write(chunk)
                    size += len(chunk)
            except BaseException:
                buffer.close()
                raise
            finally:
                response.close()
            buffer.seek(0)
            return Download(
                body=buffer,  # type: ignore[arg-type]
                headers=response.headers,
                status=response.status_code,
                size=size,
            )

        return self.request(method, path, kind=kind, consume=spool, **kwargs)

    def close(self) -> None:
        """Close pooled connections (open jobs stay registered for the exit handler)."""
        self._session.close()


def wait_interval(
    started: float,
    timeout: float,
    interval: float,
    *,
    what: str,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Sleep ``interval`` seconds (less if the deadline is nearer), waking early on shutdown.

    Raises:
        OperationCancelledError: The process is shutting down.
    """
    remaining = timeout - (time.monotonic() - started)
    if _shutdown.wait(max(0.0, min(interval, remaining))):
        raise OperationCancelledError(
            f"stopped waiting for {what}: the process is shutting down", **dict(context or {})
        )


def growing_intervals(first: float, factor: float, maximum: float) -> Iterable[float]:
    """Yield poll intervals: ``first``, then times ``factor`` each time, capped at ``maximum``."""
    value = first
    while True:
        yield min(value, maximum)
        value = min(value * factor, maximum)


class JobWait:
    """One wait for a Bulk job or batch: polls at growing intervals until a deadline.

    Bulk 1.0 batch waits, Bulk 1.0 query-chunk waits and Bulk 2.0 job waits share this policy;
    each caller only says what "done" means and what to raise when :attr:`expired`.

    Args:
        timeout: Seconds the whole wait may take (counted from construction).
        first: First interval between polls.
        factor: Growth of the interval after each poll.
        maximum: Longest interval.
        what: The awaited thing, for the shutdown message (e.g. ``Bulk 1.0 job 750…``).
        job_id: The Salesforce job id, carried by the shutdown error.
    """

    def __init__(
        self,
        timeout: float,
        *,
        first: float,
        factor: float,
        maximum: float,
        what: str,
        job_id: str,
    ) -> None:
        self.limit = timeout
        self.started = time.monotonic()
        self.what = what
        self.job_id = job_id
        self._intervals = iter(growing_intervals(first, factor, maximum))

    @property
    def expired(self) -> bool:
        """The deadline has passed: the caller should raise its ``JobTimeoutError``."""
        return time.monotonic() - self.started >= self.limit

    def sleep(self) -> None:
        """Sleep the next interval (less if the deadline is nearer), waking early on shutdown.

        Raises:
            OperationCancelledError: The process is shutting down.
        """
        wait_interval(
            self.started,
            self.limit,
            next(self._intervals),
            what=self.what,
            context={"job_id": self.job_id},
        )


class JobPolling:
    """The poll settings of a Bulk API wrapper, and the waits built from them.

    Args:
        client: The shared HTTP client.
        poll_interval_seconds: First wait between status polls.
        poll_interval_max_seconds: Longest wait between polls.
        poll_backoff: Factor by which the wait grows after each poll.
        job_timeout_seconds: Default overall time allowed for a job (or its batches) to finish.
    """

    def __init__(
        self,
        client: SalesforceClient,
        *,
        poll_interval_seconds: float = 0.5,
        poll_interval_max_seconds: float = 30.0,
        poll_backoff: float = 1.5,
        job_timeout_seconds: float = 3600.0,
    ) -> None:
        self.client = client
        self.poll_interval_seconds = poll_interval_seconds
        self.poll_interval_max_seconds = poll_interval_max_seconds
        self.poll_backoff = poll_backoff
        self.job_timeout_seconds = job_timeout_seconds

    def job_wait(self, timeout: float | None, *, what: str, job_id: str) -> JobWait:
        """Start a wait of ``timeout`` seconds (default: ``job_timeout_seconds``)."""
        return JobWait(
            self.job_timeout_seconds if timeout is None else timeout,
            first=self.poll_interval_seconds,
            factor=self.poll_backoff,
            maximum=self.poll_interval_max_seconds,
            what=what,
            job_id=job_id,
        )
