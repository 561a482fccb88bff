"""Typed errors for every failure the Salesforce layer reports.

Callers (the tap, the target, tests) decide what to do by type: retry later, stop the run, or mark
records as failed. So every error raised by :mod:`sfbulk` is a :class:`SalesforceError` carrying
what an operator needs to find the problem in Salesforce: the error code and message Salesforce
sent, the HTTP status, the request (method and path) and the Bulk job or batch id. Secrets never
reach these objects: they are built from response bodies and paths, never from request headers or
bodies.
"""

from __future__ import annotations

from collections.abc import Sequence


class SalesforceError(Exception):
    """A failed Salesforce call or job, with the context needed to find it in the org.

    Attributes:
        message: Salesforce's message (or ours when Salesforce sent none).
        code: Salesforce's error code (``INVALID_FIELD``, ``InvalidBatch``, ``invalid_grant`` …).
        status: HTTP status of the response, if there was one.
        method: HTTP method of the request.
        path: Request path (no host, no credentials).
        job_id: Bulk job id the request or failure concerns.
        batch_id: Bulk 1.0 batch id the request or failure concerns.
        fields: Field names Salesforce named in the error, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        job_id: str | None = None,
        batch_id: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.method = method
        self.path = path
        self.job_id = job_id
        self.batch_id = batch_id
        self.fields = list(fields or [])
        super().__init__(self._render())

    def _render(self) -> str:
        """Build the one-line description: code and message first, then where it happened."""
        head = f"{self.code}: {self.message}" if self.code else self.message
        where: list[str] = []
        if self.method or self.path:
            where.append(" ".join(p for p in (self.method, self.path) if p))
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        if self.job_id:
            where.append(f"job {self.job_id}")
        if self.batch_id:
            where.append(f"batch {self.batch_id}")
        if self.fields:
            where.append("fields " + ", ".join(self.fields))
        return f"{head} ({'; '.join(where)})" if where else head

    def __str__(self) -> str:
        return self._render()


class ConfigError(SalesforceError):
    """Settings are missing, conflicting or unusable; names the settings, never their values."""


class AuthenticationError(SalesforceError):
    """Login failed, or a session was refused and could not be renewed."""


class ApiLimitError(SalesforceError):
    """The org's API allocation is (or would be) spent beyond the configured share."""


class RetryExhaustedError(SalesforceError):
    """A transient failure persisted through every allowed retry.

    Attributes:
        attempts: How many attempts were made.
        last_error: The failure of the last attempt (an exception or a mapped error).
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_error: BaseException | None = None,
        **context: object,
    ) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message, **context)  # type: ignore[arg-type]


class JobFailedError(SalesforceError):
    """A Bulk job or batch ended Failed or Aborted; the message is Salesforce's ``stateMessage``."""


class JobTimeoutError(SalesforceError):
    """A Bulk job or batch did not finish within the allowed time (the caller then aborts it)."""


class RecordCountMismatchError(SalesforceError):
    """The rows read from a query's results differ from the count Salesforce reported.

    Attributes:
        expected: ``numberRecordsProcessed`` as Salesforce reported it.
        actual: Rows actually read.
    """

    def __init__(self, message: str, *, expected: int, actual: int, **context: object) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, **context)  # type: ignore[arg-type]


class OperationCancelledError(SalesforceError):
    """The process is shutting down; a wait was cut short so the job can be aborted."""


__all__ = [
    "ApiLimitError",
    "AuthenticationError",
    "ConfigError",
    "JobFailedError",
    "JobTimeoutError",
    "OperationCancelledError",
    "RecordCountMismatchError",
    "RetryExhaustedError",
    "SalesforceError",
]
