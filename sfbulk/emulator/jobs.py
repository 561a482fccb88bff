"""Background processing shared by the emulator's Bulk API 1.0 and 2.0 handlers.

Salesforce acknowledges a batch (1.0) or an upload (2.0) at once and processes it later, on its own
servers, while the client polls. The emulator does the same: handlers record the work and hand a
callable to :class:`WorkerPool`; worker threads run it and the handler's records change state.
Parallel jobs run their batches concurrently, Serial jobs one at a time in submission order.

Query results can be far larger than memory, and clients download them page by page (1.0 result
files, 2.0 locators), possibly several pages at once. :class:`ResultFile` spools encoded rows to a
temporary file and remembers the byte offset of every row, so any page of rows ``[start, start+n)``
is served by seeking and streaming, with the header prepended to each page.

:class:`JobEngine` ties these together with the id factories and the job registry; the HTTP layer
keeps one on ``EmulatorState.jobs``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import tempfile
import threading
import weakref
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

from sfbulk.ids import IdFactory, to18

logger = logging.getLogger(__name__)

#: Bytes a result file keeps in memory before it moves to a temporary file on disk.
DEFAULT_SPOOL_BYTES = 8 * 1024 * 1024
#: Size of the chunks a page is streamed in.
DEFAULT_CHUNK_BYTES = 256 * 1024
#: Bytes buffered in memory between writes once a result file lives on disk.
_FLUSH_BYTES = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Time helpers: both APIs stamp jobs with millisecond UTC times and print them in two forms.


def now() -> datetime:
    """Return the current UTC time truncated to milliseconds, as Salesforce stores it."""
    stamp = datetime.now(timezone.utc)
    return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)


def format_xml_datetime(stamp: datetime) -> str:
    """Format a time the way Bulk 1.0 XML bodies do: ``2015-12-15T21:41:45.000Z``."""
    stamp = stamp.astimezone(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def format_json_datetime(stamp: datetime) -> str:
    """Format a time the way Bulk 1.0 JSON and Bulk 2.0 bodies do: ``…T21:41:45.000+0000``."""
    stamp = stamp.astimezone(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


def elapsed_ms(start: datetime, end: datetime) -> int:
    """Whole milliseconds between two times (never negative), for the processing-time counters."""
    return max(0, int((end - start).total_seconds() * 1000))


# --------------------------------------------------------------------------------------------
# Result files


class ResultFile:
    """Encoded result rows spooled to a temporary file, addressable by row number.

    Rows are appended as bytes already encoded for the wire (a CSV line with its terminator, a
    JSON object, an XML element). The file keeps ``offsets[i]``, the byte position where row ``i``
    starts, so a page of rows is one contiguous byte range read with ``os.pread``: no row is ever
    parsed again and concurrent readers never disturb each other.

    A page is ``header + rows + footer``. With a ``separator`` (``b", "`` between JSON objects)
    every stored row is prefixed with it and a page skips the first row's copy, so pages that
    start anywhere are still contiguous reads.

    Small results stay in memory; past ``spool_bytes`` the data moves to an unnamed temporary
    file, which is removed by :meth:`discard` or when the object is collected.

    Writing is meant for one thread (the worker that produces the rows); reading is safe from
    any number of threads, during and after writing.
    """

    def __init__(
        self,
        header: bytes = b"",
        *,
        footer: bytes = b"",
        separator: bytes = b"",
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        directory: str | None = None,
    ) -> None:
        self.header = header
        self.footer = footer
        self.separator = separator
        self._spool_bytes = spool_bytes
        self._directory = directory
        self._offsets = array("q", [0])
        self._memory = bytearray()  # all data while in memory; the unflushed tail once on disk
        self._file: BinaryIO | None = None
        self._flushed = 0  # bytes already written to the file
        self._lock = threading.Lock()
        self._finished = False
        self._discarded = False
        self._finalizer: weakref.finalize | None = None

    # -- writing ---------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Number of rows written so far."""
        return len(self._offsets) - 1

    @property
    def data_bytes(self) -> int:
        """Bytes of row data written so far (separators included, header and footer not)."""
        return self._offsets[-1]

    @property
    def finished(self) -> bool:
        """Whether the producer has called :meth:`finish`."""
        return self._finished

    @property
    def on_disk(self) -> bool:
        """Whether the data has moved to a temporary file (for tests and statistics)."""
        return self._file is not None

    def append(self, row: bytes) -> None:
        """Append one encoded row."""
        self.extend((row,))

    def extend(self, rows: Sequence[bytes] | Iterable[bytes]) -> None:
        """Append encoded rows in order."""
        sep = self.separator
        offsets = self._offsets
        end = offsets[-1]
        pieces = []
        for row in rows:
            if sep:
                row = sep + row
            end += len(row)
            offsets.append(end)
            pieces.append(row)
        if pieces:
            self._write(b"".join(pieces))

    def extend_text(self, rows: Sequence[str]) -> None:
        """Append rows given as ``str`` (e.g. what ``csv.writer`` produced), encoded as UTF-8.

        The common all-ASCII case encodes the whole chunk at once and takes row lengths from the
        strings, which is several times faster than encoding row by row.
        """
        if not rows:
            return
        sep = self.separator.decode("utf-8")
        text = sep.join(rows)
        if sep:
            text = sep + text
        if text.isascii():
            data = text.encode("ascii")
            offsets = self._offsets
            step = len(sep)
            end = offsets[-1]
            lengths = (step + len(r) for r in rows)
            offsets.extend(itertools.islice(itertools.accumulate(lengths, initial=end), 1, None))
            self._write(data)
        else:
            self.extend([r.encode("utf-8") for r in rows])

    def _write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("cannot append to a finished result file")
        with self._lock:
            self._memory += data
            if self._file is None:
                if len(self._memory) > self._spool_bytes:
                    self._spill()
            elif len(self._memory) >= _FLUSH_BYTES:
                self._flush_locked()

    def _spill(self) -> None:
        handle = tempfile.TemporaryFile(prefix="sfbulk-result-", dir=self._directory, buffering=0)
        self._file = handle
        self._finalizer = weakref.finalize(self, handle.close)
        self._flush_locked()

    def _flush_locked(self) -> None:
        assert self._file is not None
        view = memoryview(self._memory)
        written = 0
        while written < len(view):
            written += os.pwrite(self._file.fileno(), view[written:], self._flushed + written)
        view.release()
        self._flushed += written
        self._memory.clear()

    def finish(self) -> None:
        """Mark the file complete; nothing more can be appended. Idempotent."""
        with self._lock:
            if self._file is not None and self._memory:
                self._flush_locked()
            self._finished = True

    def discard(self) -> None:
        """Release the memory and the temporary file; the pages are gone afterwards."""
        with self._lock:
            self._discarded = True
            self._memory = bytearray()
            if self._finalizer is not None:
                self._finalizer()
            self._file = None

    # -- reading ---------------------------------------------------------------------------

    def page_count(self, start: int, count: int | None) -> int:
        """How many rows the page ``[start, start+count)`` really holds (clipped to the end)."""
        total = self.row_count
        if start >= total:
            return 0
        return total - start if count is None else max(0, min(count, total - start))

    def _range(self, start: int, count: int | None) -> tuple[int, int]:
        if start < 0 or (count is not None and count < 0):
            raise ValueError(f"bad result page: start={start} count={count}")
        rows = self.page_count(start, count)
        if rows == 0:
            return 0, 0
        begin = self._offsets[start] + len(self.separator)
        return begin, self._offsets[start + rows]

    def page_bytes(self, start: int = 0, count: int | None = None) -> int:
        """Length in bytes of the page as :meth:`iter_page` yields it (for Content-Length)."""
        begin, end = self._range(start, count)
        return len(self.header) + (end - begin) + len(self.footer)

    def iter_page(
        self, start: int = 0, count: int | None = None, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[bytes]:
        """Yield the page of rows ``[start, start+count)`` (all rows from ``start`` when count is
        None) as byte chunks of at most ``chunk_bytes``, header first and footer last."""
        begin, end = self._range(start, count)
        if self.header:
            yield self.header
        position = begin
        while position < end:
            size = min(chunk_bytes, end - position)
            yield self._read(position, size)
            position += size
        if self.footer:
            yield self.footer

    def read_page(self, start: int = 0, count: int | None = None) -> bytes:
        """The whole page as one bytes object; for small pages and tests."""
        return b"".join(self.iter_page(start, count))

    def _read(self, position: int, size: int) -> bytes:
        with self._lock:
            if self._discarded:
                raise RuntimeError("the result file was discarded")
            if self._file is None:
                return bytes(self._memory[position : position + size])
            if position + size > self._flushed:
                # The producer is still writing and the range reaches the unflushed tail.
                self._flush_locked()
            fd = self._file.fileno()
        data = os.pread(fd, size, position)
        if len(data) != size:
            raise OSError(f"short read from result file: {len(data)} of {size} bytes")
        return data


# --------------------------------------------------------------------------------------------
# Worker pool


class WorkerPool:
    """Threads that run submitted callables, grouped by job.

    ``submit(group, task, serial=False)`` queues ``task`` for the job ``group``. Tasks of a
    parallel group may run at the same time on different workers; tasks of a serial group run
    one at a time in the order they were submitted (other groups keep running meanwhile).
    Workers start on the first submit. A task's exception is logged and does not stop the pool,
    but the callables are expected to record their own failures (a batch goes ``Failed``).

    Tasks that wait (slow-processing faults, a job that never finishes) should wait with
    :meth:`sleep`, which returns early when the pool shuts down, so shutdown stays prompt.
    """

    def __init__(self, workers: int = 4, *, name: str = "sfbulk-worker") -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._size = workers
        self._name = name
        self._cond = threading.Condition()
        self._ready: deque[tuple[str, Callable[[], object], bool]] = deque()
        self._serial_waiting: dict[str, deque[Callable[[], object]]] = {}
        self._serial_busy: set[str] = set()  # serial groups with a task queued or running
        self._running: Counter[str] = Counter()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        """True once :meth:`shutdown` has begun."""
        return self._stopping.is_set()

    def submit(self, group: str, task: Callable[[], object], *, serial: bool = False) -> None:
        """Queue ``task`` for job ``group``; serial groups run their tasks one at a time, in order.

        Raises:
            RuntimeError: the pool is shutting down.
        """
        with self._cond:
            if self._stopping.is_set():
                raise RuntimeError("the worker pool is shutting down")
            if serial:
                if group in self._serial_busy:
                    self._serial_waiting.setdefault(group, deque()).append(task)
                    return
                self._serial_busy.add(group)
            self._ready.append((group, task, serial))
            self._start_workers()
            self._cond.notify()

    def cancel(self, group: str) -> int:
        """Drop the tasks of ``group`` that have not started; return how many were dropped.

        Tasks already running finish (as an aborted Salesforce batch that is InProgress does).
        """
        with self._cond:
            kept = deque(entry for entry in self._ready if entry[0] != group)
            dropped = len(self._ready) - len(kept)
            self._ready = kept
            dropped += len(self._serial_waiting.pop(group, ()))
            if group in self._serial_busy and not self._running[group]:
                self._serial_busy.discard(group)
            self._cond.notify_all()
            return dropped

    def pending(self, group: str | None = None) -> int:
        """Tasks queued or running, for one group or for the whole pool."""
        with self._cond:
            return self._pending_locked(group)

    def wait_idle(self, group: str | None = None, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (for ``group``, or at all); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_locked(group) == 0, timeout)

    def _pending_locked(self, group: str | None) -> int:
        if group is None:
            waiting = sum(len(q) for q in self._serial_waiting.values())
            return len(self._ready) + waiting + sum(self._running.values())
        queued = sum(1 for entry in self._ready if entry[0] == group)
        return queued + len(self._serial_waiting.get(group, ())) + self._running[group]

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the pool shuts down first; True when the full time passed."""
        return not self._stopping.wait(seconds)

    def shutdown(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Stop the workers: queued tasks are dropped, running ones are given ``timeout`` seconds.

        Idempotent. Tasks that sleep with :meth:`sleep` wake up at once.
        """
        with self._cond:
            self._stopping.set()
            self._ready.clear()
            self._serial_waiting.clear()
            self._serial_busy.clear()
            self._cond.notify_all()
        if wait:
            current = threading.current_thread()
            for thread in self._threads:
                if thread is not current:
                    thread.join(timeout)
            stuck = [t.name for t in self._threads if t.is_alive() and t is not current]
            if stuck:
                logger.warning("worker threads still running after shutdown: %s", ", ".join(stuck))

    def _start_workers(self) -> None:
        if self._threads:
            return
        for number in range(self._size):
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                group, task, serial = self._ready.popleft()
                self._running[group] += 1
            try:
                task()
            except Exception:
                logger.exception("background task of job %s failed", group)
            finally:
                with self._cond:
                    self._running[group] -= 1
                    if not self._running[group]:
                        del self._running[group]
                    if serial and group in self._serial_busy:
                        waiting = self._serial_waiting.get(group)
                        if waiting:
                            self._ready.append((group, waiting.popleft(), True))
                            if not waiting:
                                del self._serial_waiting[group]
                        else:
                            self._serial_busy.discard(group)
                    self._cond.notify_all()


# --------------------------------------------------------------------------------------------
# The engine both Bulk APIs share


class JobEngine:
    """The emulator's Bulk job machinery: worker pool, id factories and the job registry.

    Bulk 1.0 and 2.0 jobs share one id space (prefix ``750``), as on Salesforce; each API keeps
    its own job records and registers them here under their 18-character id, so lookups accept
    15- or 18-character ids.
    """

    def __init__(self, workers: int = 4, *, result_directory: str | None = None) -> None:
        self.pool = WorkerPool(workers)
        self.result_directory = result_directory
        self._job_ids = IdFactory("750")
        self._batch_ids = IdFactory("751")
        self._result_ids = IdFactory("752")
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def new_job_id(self) -> str:
        """A fresh 18-character job id (``750…``)."""
        return self._job_ids.next()

    def new_batch_id(self) -> str:
        """A fresh 18-character batch id (``751…``)."""
        return self._batch_ids.next()

    def new_result_id(self) -> str:
        """A fresh query result id: 15 characters (``752…``), as Bulk 1.0 prints them."""
        return self._result_ids.next()[:15]

    def result_file(
        self, header: bytes = b"", *, footer: bytes = b"", separator: bytes = b""
    ) -> ResultFile:
        """A new :class:`ResultFile` spooling to this engine's result directory."""
        return ResultFile(
            header, footer=footer, separator=separator, directory=self.result_directory
        )

    def add(self, job_id: str, job: Any) -> None:
        """Register a job record under its id."""
        with self._lock:
            self._jobs[job_id] = job

    def get(self, job_id: str, kind: type | None = None) -> Any | None:
        """The job with this 15- or 18-character id (of class ``kind`` when given), or None."""
        if len(job_id) not in (15, 18):
            return None
        try:
            key = to18(job_id)
        except ValueError:
            return None
        if len(job_id) == 18 and key != job_id:
            return None
        with self._lock:
            job = self._jobs.get(key)
        if job is None or (kind is not None and not isinstance(job, kind)):
            return None
        return job

    def jobs(self, kind: type | None = None) -> list[Any]:
        """All registered jobs (of class ``kind`` when given), oldest first."""
        with self._lock:
            found = list(self._jobs.values())
        return [job for job in found if kind is None or isinstance(job, kind)]

    def remove(self, job_id: str) -> Any | None:
        """Forget a job (Bulk 2.0 DELETE); returns the record that was removed."""
        with self._lock:
            return self._jobs.pop(job_id, None)

    def shutdown(self, *, timeout: float = 10.0) -> None:
        """Stop the workers and drop every result file."""
        self.pool.shutdown(timeout=timeout)
        for job in self.jobs():
            closer = getattr(job, "discard_results", None)
            if callable(closer):
                with contextlib.suppress(Exception):
                    closer()
