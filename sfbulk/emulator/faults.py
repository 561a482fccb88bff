"""Fault injection: the failures a real org produces now and then, on demand.

Clients must survive 5xx answers, connections cut mid-download, the daily request limit, expired
sessions, failed batches, slow processing and ``UNABLE_TO_LOCK_ROW``; none of these can be
provoked on a real org at will. :class:`Faults` holds the switches; the HTTP middleware asks it
about every request, and the Bulk job processors ask it about batches and records.

Switches are set by CLI flags at start and by the admin endpoint ``POST /_emulator/faults`` (see
:meth:`Faults.configure` for the JSON it takes) and cleared by ``DELETE /_emulator/faults``.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Kinds of per-request faults.
HTTP_500 = "http_500"
HTTP_503 = "http_503"
DROP_CONNECTION = "drop_connection"
REQUEST_LIMIT_EXCEEDED = "request_limit_exceeded"
REQUEST_FAULT_KINDS = (HTTP_500, HTTP_503, DROP_CONNECTION, REQUEST_LIMIT_EXCEEDED)

#: Batch ``stateMessage`` / job ``errorMessage`` used when ``fail_batches`` names no message.
DEFAULT_BATCH_FAILURE = "InternalServerError : Retried more than 10 times"

#: Bytes of a response body sent before a dropped connection is cut, unless a rule says otherwise.
DEFAULT_DROP_AFTER_BYTES = 64

#: Paths whose requests count as API calls; a rule without ``path`` applies to these only.
_API_PATH = re.compile(r"^/services/(data/v[^/]+/|async/)")


def is_api_path(path: str) -> bool:
    """Tell whether ``path`` is a REST, Bulk 1.0 or Bulk 2.0 call (not OAuth, SOAP or admin)."""
    return bool(_API_PATH.match(path))


@dataclass
class RequestRule:
    """One per-request fault: which requests it hits and how many more times.

    Attributes:
        kind: One of :data:`REQUEST_FAULT_KINDS`.
        count: Matching requests still to fail; None means unlimited (use ``rate``).
        rate: Share of matching requests that fail (1.0 = all, while ``count`` lasts).
        method: HTTP method to match (None = any).
        path: Regular expression searched in the path (None = every API path).
        after_bytes: For dropped connections, bytes of the body sent before the cut.
    """

    kind: str
    count: int | None = 1
    rate: float = 1.0
    method: str | None = None
    path: re.Pattern[str] | None = None
    after_bytes: int = DEFAULT_DROP_AFTER_BYTES

    def matches(self, method: str, path: str) -> bool:
        """Tell whether this rule applies to a request (before counting and rate)."""
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is None:
            return is_api_path(path)
        return bool(self.path.search(path))

    def describe(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/faults``."""
        out: dict[str, Any] = {"count": self.count, "rate": self.rate}
        out["method"] = self.method
        out["path"] = self.path.pattern if self.path is not None else None
        if self.kind == DROP_CONNECTION:
            out["after_bytes"] = self.after_bytes
        return out


@dataclass
class _Switches:
    """The non-request switches, read by the job processors."""

    expire_session_after: int | None = None
    fail_batches: int = 0
    fail_batch_message: str = DEFAULT_BATCH_FAILURE
    processing_delay_seconds: float = 0.0
    lock_error_share: float = 0.0
    never_finish: bool = False
    rules: list[RequestRule] = field(default_factory=list)


class Faults:
    """The emulator's fault switches; thread-safe.

    Args:
        processing_delay_seconds: Baseline delay before each batch is processed (the CLI's
            ``--processing-delay``); ``clear()`` returns to it.
        seed: Seed of the random source behind rates and lock-error shares, so a run with the
            same requests fails the same way.
    """

    def __init__(self, processing_delay_seconds: float = 0.0, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._baseline_delay = processing_delay_seconds
        self._seed = seed
        self._random = random.Random(seed)
        self._s = _Switches(processing_delay_seconds=processing_delay_seconds)
        #: How many times each fault has fired (for ``GET /_emulator/stats``).
        self.injected: Counter[str] = Counter()

    # -- configuration ---------------------------------------------------------------------

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply the switches named in ``spec`` (others keep their values).

        Keys (all optional):

        - ``http_500``, ``http_503``, ``drop_connection``, ``request_limit_exceeded``: an integer
          N (the next N API requests) or an object ``{"count": N, "rate": r, "method": "GET",
          "path": "regex", "after_bytes": B}``. Without ``count`` a ``rate`` applies forever.
          Without ``path`` only REST/Bulk API paths match; with one, any non-admin path whose
          text the regex finds (so OAuth can be targeted too). Each call adds a rule.
        - ``expire_session_after``: N; after N more API calls every session expires once.
        - ``fail_batches``: N or ``{"count": N, "message": "…"}``; the next N batches (Bulk 1.0)
          or ingest/query jobs (Bulk 2.0) fail with that message.
        - ``processing_delay_seconds``: seconds each batch waits before it is processed.
        - ``lock_error_share``: 0..1, share of records of parallel batches sharing a parent that
          fail with ``UNABLE_TO_LOCK_ROW``.
        - ``never_finish``: true keeps new jobs and batches ``InProgress`` for good.
        - ``seed``: reseed the random source.

        Raises:
            ValueError: naming the key whose value is not acceptable; nothing is changed then.
        """
        if not isinstance(spec, dict):
            raise ValueError("the fault specification must be a JSON object")
        unknown = sorted(set(spec) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"unknown fault switch: {', '.join(unknown)}")
        rules = [_parse_rule(kind, spec[kind]) for kind in REQUEST_FAULT_KINDS if kind in spec]
        updates: dict[str, Any] = {}
        if "expire_session_after" in spec:
            value = spec["expire_session_after"]
            updates["expire_session_after"] = (
                None if value is None else _non_negative_int("expire_session_after", value)
            )
        if "fail_batches" in spec:
            value = spec["fail_batches"]
            if isinstance(value, dict):
                updates["fail_batches"] = _non_negative_int(
                    "fail_batches.count", value.get("count", 1)
                )
                message = value.get("message", DEFAULT_BATCH_FAILURE)
                if not isinstance(message, str) or not message:
                    raise ValueError("fail_batches.message must be a non-empty string")
                updates["fail_batch_message"] = message
            else:
                updates["fail_batches"] = _non_negative_int("fail_batches", value)
                updates["fail_batch_message"] = DEFAULT_BATCH_FAILURE
        if "processing_delay_seconds" in spec:
            updates["processing_delay_seconds"] = _non_negative_float(
                "processing_delay_seconds", spec["processing_delay_seconds"]
            )
        if "lock_error_share" in spec:
            share = _non_negative_float("lock_error_share", spec["lock_error_share"])
            if share > 1:
                raise ValueError("lock_error_share must be between 0 and 1")
            updates["lock_error_share"] = share
        if "never_finish" in spec:
            if not isinstance(spec["never_finish"], bool):
                raise ValueError("never_finish must be true or false")
            updates["never_finish"] = spec["never_finish"]
        seed = None
        if "seed" in spec:
            seed = _non_negative_int("seed", spec["seed"])
        with self._lock:
            for key, value in updates.items():
                setattr(self._s, key, value)
            self._s.rules.extend(rules)
            if seed is not None:
                self._seed = seed
                self._random = random.Random(seed)

    def clear(self) -> None:
        """Turn every fault off (the processing delay returns to its start-up value)."""
        with self._lock:
            self._s = _Switches(processing_delay_seconds=self._baseline_delay)
            self._random = random.Random(self._seed)

    def snapshot(self) -> dict[str, Any]:
        """The current switches as JSON (``GET /_emulator/faults``)."""
        with self._lock:
            s = self._s
            rules: dict[str, list[dict[str, Any]]] = {kind: [] for kind in REQUEST_FAULT_KINDS}
            for rule in s.rules:
                rules[rule.kind].append(rule.describe())
            return {
                **rules,
                "expire_session_after": s.expire_session_after,
                "fail_batches": s.fail_batches,
                "fail_batch_message": s.fail_batch_message,
                "processing_delay_seconds": s.processing_delay_seconds,
                "lock_error_share": s.lock_error_share,
                "never_finish": s.never_finish,
            }

    # -- per-request faults (the middleware) -----------------------------------------------

    def request_fault(self, method: str, path: str) -> RequestRule | None:
        """The fault to inject into this request, if any; consumes one use of the rule.

        The admin endpoints are never faulted, so a test can always clear what it set.
        """
        if path.startswith("/_emulator"):
            return None
        with self._lock:
            for rule in self._s.rules:
                if rule.count is not None and rule.count <= 0:
                    continue
                if not rule.matches(method, path):
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                self.injected[rule.kind] += 1
                self._s.rules = [r for r in self._s.rules if r.count is None or r.count > 0]
                return rule
        return None

    def count_api_call(self) -> bool:
        """Count one API call toward ``expire_session_after``.

        Returns:
            True exactly once, on the call that reaches the set number: the caller then expires
            every session, so the next call meets an expired session.
        """
        with self._lock:
            remaining = self._s.expire_session_after
            if remaining is None:
                return False
            remaining -= 1
            if remaining <= 0:
                self._s.expire_session_after = None
                self.injected["expire_sessions"] += 1
                return True
            self._s.expire_session_after = remaining
            return False

    # -- switches read by the Bulk job processors ------------------------------------------

    def take_batch_failure(self) -> str | None:
        """If the next batch (1.0) or job (2.0) must fail, its message; else None."""
        with self._lock:
            if self._s.fail_batches <= 0:
                return None
            self._s.fail_batches -= 1
            self.injected["fail_batches"] += 1
            return self._s.fail_batch_message

    @property
    def processing_delay_seconds(self) -> float:
        """Seconds a batch waits (in its worker) before it is processed."""
        with self._lock:
            return self._s.processing_delay_seconds

    @property
    def lock_error_share(self) -> float:
        """Share of records of concurrently processed batches sharing a parent to fail."""
        with self._lock:
            return self._s.lock_error_share

    @property
    def never_finish(self) -> bool:
        """When true, jobs and batches stay ``InProgress`` instead of finishing."""
        with self._lock:
            return self._s.never_finish

    def roll_lock_error(self) -> bool:
        """Decide, with probability ``lock_error_share``, whether one record fails to lock."""
        with self._lock:
            share = self._s.lock_error_share
            if share <= 0:
                return False
            failed = share >= 1 or self._random.random() < share
            if failed:
                self.injected["lock_errors"] += 1
            return failed


def lock_error_message(record_id: str) -> str:
    """The message of an ``UNABLE_TO_LOCK_ROW`` record error on the record ``record_id``."""
    return f"unable to obtain exclusive access to this record or 1 records: {record_id}"


_KNOWN_KEYS = {
    *REQUEST_FAULT_KINDS,
    "expire_session_after",
    "fail_batches",
    "processing_delay_seconds",
    "lock_error_share",
    "never_finish",
    "seed",
}


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, not {value!r}")
    return float(value)


def _parse_rule(kind: str, value: Any) -> RequestRule:
    """Build a rule from the admin JSON (an integer count or an object)."""
    if not isinstance(value, dict):
        return RequestRule(kind=kind, count=_non_negative_int(kind, value))
    unknown = sorted(set(value) - {"count", "rate", "method", "path", "after_bytes"})
    if unknown:
        raise ValueError(f"unknown key in {kind}: {', '.join(unknown)}")
    count: int | None
    if "count" in value and value["count"] is not None:
        count = _non_negative_int(f"{kind}.count", value["count"])
    elif "rate" in value:
        count = None
    else:
        count = 1
    rate = _non_negative_float(f"{kind}.rate", value.get("rate", 1.0))
    if rate > 1:
        raise ValueError(f"{kind}.rate must be between 0 and 1")
    method = value.get("method")
    if method is not None and (not isinstance(method, str) or not method.isalpha()):
        raise ValueError(f"{kind}.method must be an HTTP method name, not {method!r}")
    pattern = value.get("path")
    compiled = None
    if pattern is not None:
        if not isinstance(pattern, str):
            raise ValueError(f"{kind}.path must be a regular expression string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{kind}.path is not a valid regular expression: {exc}") from None
    after = _non_negative_int(
        f"{kind}.after_bytes", value.get("after_bytes", DEFAULT_DROP_AFTER_BYTES)
    )
    return RequestRule(
        kind=kind,
        count=count,
        rate=rate,
        method=method.upper() if method else None,
        path=compiled,
        after_bytes=after,
    )
