"""The REST API of the emulated org, and the emulator's admin endpoints.

REST resources (``/services/data/vNN.N/…``, every version from 20.0 to 66.0 alike):

- ``GET /services/data`` — the versions list (no session needed);
- ``GET /services/data/vNN.N`` — the resources of a version;
- ``GET …/sobjects`` (describeGlobal), ``GET …/sobjects/X`` (basic info),
  ``GET …/sobjects/X/describe``;
- ``GET …/limits`` with honest ``Remaining`` values for the allocations the emulator counts;
- ``GET …/query?q=`` / ``…/queryAll?q=`` and their ``nextRecordsUrl`` pages;
- ``POST …/sobjects/X``, ``GET|PATCH|DELETE …/sobjects/X/{id}`` and
  ``PATCH …/sobjects/X/{field}/{value}`` (upsert by external id), as simple-salesforce uses them;
- ``POST …/composite/batch`` (up to 25 subrequests, ``haltOnError``).

Errors use REST's array form ``[{"message": …, "errorCode": …}]``. Sessions, the version and
the daily allocation are checked by the accounting middleware before any handler here runs.

Admin endpoints (``/_emulator/…``) need no session but answer only loopback clients:

- ``GET /_emulator/faults`` — the current fault switches;
- ``POST /_emulator/faults`` — set switches (JSON, see :meth:`Faults.configure`);
- ``DELETE /_emulator/faults`` — clear every switch;
- ``POST /_emulator/expire-sessions`` — expire every session now;
- ``POST /_emulator/revoke-refresh-token`` — later refresh grants fail with ``invalid_grant``;
- ``GET /_emulator/stats`` — API usage, sessions, faults fired, jobs and record counts;
- ``POST /_emulator/reset`` — see :meth:`EmulatorState.reset`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sfbulk.ids import is_valid_id, to18

if TYPE_CHECKING:
    from sfbulk.emulator.app import EmulatorState
    from sfbulk.emulator.metadata import SObjectDef

logger = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "The requested resource does not exist"
#: Subrequests allowed in one ``composite/batch`` call.
COMPOSITE_BATCH_MAX = 25
#: REST query cursors kept at once (oldest dropped first) and their idle lifetime.
MAX_QUERY_LOCATORS = 200
QUERY_LOCATOR_IDLE_SECONDS = 15 * 60


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON in Salesforce's REST content type."""
    body = json.dumps(value, default=_json_default, ensure_ascii=False)
    return Response(body, status, headers, "application/json;charset=UTF-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def error_response(
    status: int, code: str, message: str, fields: Sequence[str] | None = None
) -> Response:
    """``[{"message", "errorCode"[, "fields"]}]`` with ``status``."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = list(fields)
    return json_response([entry], status)


def not_found() -> Response:
    """404 ``NOT_FOUND``, for unknown objects, records and resources."""
    return error_response(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def _version(request: Request) -> str:
    return request.path_params["version"]


# ---------------------------------------------------------------------------------------------
# Versions and resources


def release_label(major: int) -> str:
    """Release name of API version ``major``.0: three a year from Winter '11 (20.0)."""
    index = major - 20
    season = ("Winter", "Spring", "Summer")[index % 3]
    return f"{season} '{11 + index // 3:02d}"


def versions_body(state: EmulatorState) -> list[dict[str, str]]:
    """``GET /services/data``: every served version, oldest first."""
    return [
        {"label": release_label(int(float(v))), "url": f"/services/data/v{v}", "version": v}
        for v in state.settings.api_versions
    ]


async def versions(request: Request) -> Response:
    """``GET /services/data``: the versions list (no session needed)."""
    return json_response(versions_body(_state(request)))


async def resources(request: Request) -> Response:
    """``GET /services/data/vNN.N``: the resources this version serves."""
    base = f"/services/data/v{_version(request)}"
    return json_response(
        {
            "limits": f"{base}/limits",
            "sobjects": f"{base}/sobjects",
            "query": f"{base}/query",
            "queryAll": f"{base}/queryAll",
            "composite": f"{base}/composite",
            "jobs": f"{base}/jobs",
        }
    )


# ---------------------------------------------------------------------------------------------
# Describe


def _object(request: Request) -> SObjectDef | None:
    return _state(request).org.catalog.get(request.path_params["sobject"])


def describe_global(request: Request) -> Response:
    """``GET …/sobjects``: describeGlobal."""
    state = _state(request)
    version = _version(request)
    return json_response(
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [obj.global_entry(version) for obj in state.org.catalog],
        }
    )


def describe_object(request: Request) -> Response:
    """``GET …/sobjects/X/describe``; 404 ``NOT_FOUND`` for an unknown object."""
    obj = _object(request)
    if obj is None:
        return not_found()
    return json_response(obj.describe(_version(request), _state(request).base_url()))


# ---------------------------------------------------------------------------------------------
# Limits


def limits_body(state: EmulatorState) -> dict[str, dict[str, int]]:
    """``GET …/limits``: every key a real org reports, in its alphabetical order.

    The allocations the emulator counts (API requests, Bulk batches, Bulk 2.0 query jobs and
    result storage) report what is really left; the rest are reported untouched.
    """
    from sfbulk.emulator.app import (
        DAILY_API_REQUESTS,
        DAILY_BULK_API_BATCHES,
        STATIC_LIMITS,
    )

    usage = state.usage
    out: dict[str, dict[str, int]] = {
        name: {"Max": maximum, "Remaining": maximum} for name, maximum in STATIC_LIMITS.items()
    }
    for name in usage.names():
        out[name] = {"Max": usage.maximum(name), "Remaining": usage.remaining(name)}
    # Older orgs name the batch allocation DailyBulkApiRequests; some clients still read it.
    out["DailyBulkApiRequests"] = dict(out[DAILY_BULK_API_BATCHES])
    assert DAILY_API_REQUESTS in out
    return dict(sorted(out.items()))


def limits(request: Request) -> Response:
    """``GET …/limits``."""
    return json_response(limits_body(_state(request)))


# ---------------------------------------------------------------------------------------------
# Admin endpoints


def _loopback_only(request: Request) -> Response | None:
    client = request.client
    host = client.host if client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return error_response(403, "FORBIDDEN", "The emulator's admin endpoints answer loopback only")


async def admin_faults(request: Request) -> Response:
    """``GET|POST|DELETE /_emulator/faults``: read, set or clear the fault switches."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    faults = _state(request).faults
    if request.method == "DELETE":
        faults.clear()
        return json_response(faults.snapshot())
    if request.method == "POST":
        raw = await request.body()
        try:
            spec = json.loads(raw or b"{}")
            faults.configure(spec)
        except (ValueError, TypeError) as exc:
            return error_response(400, "INVALID_FAULT", str(exc))
    return json_response(faults.snapshot())


async def admin_expire_sessions(request: Request) -> Response:
    """``POST /_emulator/expire-sessions``: every session expires now; returns how many."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    return json_response({"expired": _state(request).sessions.expire_all()})


async def admin_revoke_refresh_token(request: Request) -> Response:
    """``POST /_emulator/revoke-refresh-token``: refresh grants fail until a reset."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    _state(request).sessions.revoke_refresh_token()
    return json_response({"refresh_token_revoked": True})


def admin_stats(request: Request) -> Response:
    """``GET /_emulator/stats``: usage counters, sessions, faults fired, jobs and records."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    state = _state(request)
    usage = state.usage
    jobs = state.jobs.jobs()
    job_states: dict[str, int] = {}
    for job in jobs:
        key = str(getattr(job, "state", "unknown"))
        job_states[key] = job_states.get(key, 0) + 1
    records: dict[str, int] = {}
    counter = getattr(state.org, "count", None)
    if callable(counter):
        for obj in state.org.catalog:
            try:
                count = counter(obj.name)
            except Exception:  # objects without a table (not stored) are skipped
                count = 0
            if count:
                records[obj.name] = count
    return json_response(
        {
            "url": state.base_url(),
            "uptime_seconds": round(time.time() - state.started_at, 3),
            "usage": {
                name: {"Max": usage.maximum(name), "Used": usage.used(name)}
                for name in usage.names()
            },
            "sessions": {
                "active": state.sessions.active_count(),
                "issued": state.sessions.issued_count,
                "expired": state.sessions.expired_count,
                "refresh_token_revoked": state.sessions.refresh_token_revoked,
            },
            "faults_injected": dict(state.faults.injected),
            "jobs": {"total": len(jobs), "by_state": job_states},
            "records": records,
        }
    )


async def admin_reset(request: Request) -> Response:
    """``POST /_emulator/reset``: back to a fresh start (see :meth:`EmulatorState.reset`)."""
    refused = _loopback_only(request)
    if refused is not None:
        return refused
    _state(request).reset()
    return json_response({"reset": True})


# ---------------------------------------------------------------------------------------------
# REST query cursors


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    version: str
    kind: str  # "query" or "queryAll"
    touched: float


class QueryLocators:
    """Open REST query results, so ``nextRecordsUrl`` pages come from one stable snapshot.

    A query's records are rendered once, when it runs; later pages are slices of that list,
    unaffected by writes in between, as on Salesforce. Cursors idle for 15 minutes, or beyond
    the newest :data:`MAX_QUERY_LOCATORS`, are dropped.
    """

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, rows: list[dict[str, Any]], version: str, kind: str) -> str:
        """Keep ``rows`` and return the new locator id (``01g…``, 18 characters)."""
        locator = to18("01g" + "".join(secrets.choice(_ALNUM) for _ in range(12)))
        now = time.time()
        with self._lock:
            self._cursors[locator] = _Cursor(rows, version, kind, now)
            self._expire(now)
        return locator

    def get(self, locator: str) -> _Cursor | None:
        """The cursor behind ``locator`` (and mark it used), or None."""
        now = time.time()
        with self._lock:
            self._expire(now)
            cursor = self._cursors.get(locator)
            if cursor is not None:
                cursor.touched = now
                self._cursors.move_to_end(locator)
            return cursor

    def close(self, locator: str) -> None:
        """Forget a cursor whose last page has been served."""
        with self._lock:
            self._cursors.pop(locator, None)

    def clear(self) -> None:
        """Forget every cursor."""
        with self._lock:
            self._cursors.clear()

    def _expire(self, now: float) -> None:
        idle = QUERY_LOCATOR_IDLE_SECONDS
        stale = [k for k, c in self._cursors.items() if now - c.touched > idle]
        for key in stale:
            del self._cursors[key]
        while len(self._cursors) > MAX_QUERY_LOCATORS:
            self._cursors.popitem(last=False)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def routes() -> list[BaseRoute]:
    """REST and admin routes (mounted after Bulk 2.0's ``…/jobs`` routes)."""
    data = "/services/data/v{version}"
    return [
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        Route(data, resources, methods=["GET"]),
        Route(data + "/", resources, methods=["GET"]),
        Route(data + "/limits", limits, methods=["GET"]),
        Route(data + "/limits/", limits, methods=["GET"]),
        Route(data + "/sobjects", describe_global, methods=["GET"]),
        Route(data + "/sobjects/", describe_global, methods=["GET"]),
        Route(data + "/sobjects/{sobject}/describe", describe_object, methods=["GET"]),
        Route(data + "/sobjects/{sobject}/describe/", describe_object, methods=["GET"]),
        Route("/_emulator/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/expire-sessions", admin_expire_sessions, methods=["POST"]),
        Route("/_emulator/revoke-refresh-token", admin_revoke_refresh_token, methods=["POST"]),
        Route("/_emulator/stats", admin_stats, methods=["GET"]),
        Route("/_emulator/reset", admin_reset, methods=["POST"]),
    ]


__all__ = ["QueryLocators", "is_valid_id", "routes"]
