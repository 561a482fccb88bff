"""The failed-records output and the run's tally of outcomes.

Every record the target receives ends as exactly one of: loaded (successful), failed (Salesforce
refused it), unprocessed (its job stopped before reaching it) or rejected (the target refused it
before any job: unknown field, bad value, limit). :class:`RunTally` counts them per stream and
checks the books: successful + failed + unprocessed + rejected = received.

Records that did not load are written to ``failed_records_path`` as JSON lines — the stream, the
object, the operation, the error code and message, the fields Salesforce named, the job and batch,
and the original record as received — so they can be inspected, fixed and fed back in. The file
is created with permissions 0600 (records are customer data) and truncated at the start of a run.
Without a path, each failure is logged (the first 100 in full, then counted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from target_sfbulk.outcomes import FAILED, REJECTED, SUCCESS, UNPROCESSED, Outcome

logger = logging.getLogger(__name__)

#: Failures logged in full when no failed-records file is configured.
LOGGED_FAILURES = 100


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.is_finite() else \
            float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


@dataclass
class StreamTally:
    """Outcome counts of one stream."""

    received: int = 0
    successful: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    unprocessed: int = 0
    rejected: int = 0
    collapsed: int = 0
    lock_retries: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def accounted(self) -> int:
        return self.successful + self.failed + self.unprocessed + self.rejected

    @property
    def not_loaded(self) -> int:
        return self.failed + self.unprocessed + self.rejected


class RunTally:
    """Thread-safe counts of outcomes per stream, and the failed-records output.

    Args:
        path: ``failed_records_path``, or ``None`` to log failures instead.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path else None
        # Re-entrant: the SIGTERM handler flushes the file from the thread the signal
        # interrupted, which may be inside one of these methods.
        self._lock = threading.RLock()
        self._streams: dict[str, StreamTally] = {}
        self._file: IO[str] | None = None
        self._logged = 0
        #: Records not loaded so far (read without the lock on the per-record hot path).
        self.not_loaded_count = 0
        if self.path is not None:
            self._file = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        return os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def stream(self, name: str) -> StreamTally:
        with self._lock:
            tally = self._streams.get(name)
            if tally is None:
                tally = self._streams[name] = StreamTally()
            return tally

    def received(self, stream: str, count: int = 1) -> None:
        tally = self.stream(stream)
        with self._lock:
            tally.received += count

    def collapsed(self, stream: str, count: int) -> None:
        tally = self.stream(stream)
        with self._lock:
            tally.collapsed += count

    def lock_retried(self, stream: str, count: int) -> None:
        tally = self.stream(stream)
        with self._lock:
            tally.lock_retries += count

    def record(self, stream: str, obj: str, operation: str, outcome: Outcome,
               record: Mapping[str, Any]) -> None:
        """Count one record's outcome and write it out when it did not load."""
        tally = self.stream(stream)
        with self._lock:
            if outcome.status == SUCCESS:
                tally.successful += 1
                if outcome.created:
                    tally.created += 1
                else:
                    tally.updated += 1
                return
            self._count_failure(tally, stream, obj, operation, outcome, record)

    def record_many(self, stream: str, obj: str, operation: str, outcomes: Sequence[Outcome],
                    records: Sequence[Mapping[str, Any]]) -> int:
        """Count the outcomes of a batch's records (paired in order) as :meth:`record` does,
        under one lock; returns how many loaded."""
        tally = self.stream(stream)
        loaded = created = 0
        with self._lock:
            for outcome, record in zip(outcomes, records, strict=True):
                if outcome.status == SUCCESS:
                    loaded += 1
                    if outcome.created:
                        created += 1
                    continue
                self._count_failure(tally, stream, obj, operation, outcome, record)
            tally.successful += loaded
            tally.created += created
            tally.updated += loaded - created
        return loaded

    def _count_failure(self, tally: StreamTally, stream: str, obj: str, operation: str,
                       outcome: Outcome, record: Mapping[str, Any]) -> None:
        self.not_loaded_count += 1
        if outcome.status == FAILED:
            tally.failed += 1
        elif outcome.status == UNPROCESSED:
            tally.unprocessed += 1
        elif outcome.status == REJECTED:
            tally.rejected += 1
        else:  # pragma: no cover - every status is one of the four
            raise ValueError(f"unknown outcome status {outcome.status!r}")
        tally.codes[outcome.code or "UNKNOWN"] += 1
        self._write(stream, obj, operation, outcome, record)

    def _write(self, stream: str, obj: str, operation: str, outcome: Outcome,
               record: Mapping[str, Any]) -> None:
        entry = {
            "stream": stream,
            "object": obj,
            "operation": operation,
            "status": outcome.status,
            "error_code": outcome.code,
            "error_message": outcome.message,
            "fields": list(outcome.fields),
            "job_id": outcome.job_id,
            "batch_id": outcome.batch_id,
            "record": dict(record),
        }
        if self._file is not None:
            line = json.dumps(entry, ensure_ascii=False, default=_json_default,
                              separators=(",", ":"))
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                # Input bytes that were not UTF-8 reach us as lone surrogates; written raw they
                # would stop the run. Escaped (\udcff) the line stays valid JSON and UTF-8.
                line = json.dumps(entry, ensure_ascii=True, default=_json_default,
                                  separators=(",", ":"))
            self._file.write(line + "\n")
            return
        self._logged += 1
        if self._logged <= LOGGED_FAILURES:
            logger.warning("Record of stream %s not loaded into %s (%s, %s): %s: %s", stream,
                           obj, operation, outcome.status, outcome.code, outcome.message)
        elif self._logged == LOGGED_FAILURES + 1:
            logger.warning("Further records not loaded are counted but not logged; set "
                           "failed_records_path to keep them all")

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- summaries -------------------------------------------------------------------------------

    @property
    def not_loaded(self) -> int:
        with self._lock:
            return sum(t.not_loaded for t in self._streams.values())

    def streams(self) -> dict[str, StreamTally]:
        with self._lock:
            return dict(self._streams)

    def unbalanced(self) -> dict[str, tuple[int, int]]:
        """Streams whose outcomes do not add up to what they received: name → (received,
        accounted). Empty when the books balance."""
        with self._lock:
            return {name: (t.received, t.accounted) for name, t in self._streams.items()
                    if t.received != t.accounted}

    def summary(self) -> str:
        """One line per stream: received, loaded (created/updated) and not loaded by code."""
        lines = []
        for name, t in sorted(self.streams().items()):
            codes = ", ".join(f"{code} {count}" for code, count in t.codes.most_common())
            line = (f"{name}: received {t.received}, loaded {t.successful} (created {t.created}, "
                    f"updated {t.updated}), failed {t.failed}, unprocessed {t.unprocessed}, "
                    f"rejected {t.rejected}")
            if t.collapsed:
                line += f", collapsed duplicates {t.collapsed}"
            if t.lock_retries:
                line += f", lock retries {t.lock_retries}"
            if codes:
                line += f" [{codes}]"
            lines.append(line)
        return "\n".join(lines)
