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

import bisect
import contextlib
import itertools
import logging
import os
import tempfile
import threading
import weakref
from array import array
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

from sfbulk.ids import IdFactory, to18

logger = logging.getLogger(__name__)

#: Bytes a result file keeps in memory before it moves to a temporary file on disk.
DEFAULT_SPOOL_BYTES = 8 * 1024 * 1024
#: Size of the chunks a page is streamed in.
DEFAULT_CHUNK_BYTES = 1024 * 1024
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
        # The row index is kept per appended chunk ("segment"): the segment's first row, its
        # byte offset, and its rows' sizes (an array, or the comma-separated text SQLite built),
        # turned into cumulative offsets only when a page starts inside that segment.
        self._seg_first = array("q")
        self._seg_start = array("q")
        self._seg_sizes: list[array[int] | str | None] = []
        self._seg_offsets: dict[int, array[int]] = {}
        self._rows = 0
        self._end = 0
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
        return self._rows

    @property
    def data_bytes(self) -> int:
        """Bytes of row data written so far (separators included, header and footer not)."""
        return self._end

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
        if sep:
            rows = [sep + row for row in rows]
        elif not isinstance(rows, list):
            rows = list(rows)
        if rows:
            self._write(b"".join(rows), array("q", map(len, rows)), len(rows))

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
            step = len(sep)
            sizes = array("q", map(len, rows))
            if step:
                sizes = array("q", (size + step for size in sizes))
            self._write(text.encode("ascii"), sizes, len(rows))
        else:
            self.extend([r.encode("utf-8") for r in rows])

    def extend_block(self, data: bytes, sizes: str | None, rows: int) -> None:
        """Append ``rows`` rows already joined into ``data``; ``sizes`` is the comma-separated
        byte length of each (as SQLite's ``group_concat(length(…))`` gives it), or None when
        every row is a CSV line of quoted cells ending in ``\n`` (or ``\r\n``): a line then
        ends at each ``\n`` preceded by an even number of ``"`` in the block, since a quote
        inside a cell is doubled.

        The sizes are worked out only if a page ever starts inside this block, so a result
        built from blocks costs no Python work per row. Only for files without a separator.
        """
        if self.separator:
            raise ValueError("blocks cannot be appended to a result file with a separator")
        if rows:
            self._write(data, sizes, rows)

    def _write(self, data: bytes, sizes: array[int] | str | None, rows: int) -> None:
        if self._finished:
            raise RuntimeError("cannot append to a finished result file")
        with self._lock:
            self._seg_first.append(self._rows)
            self._seg_start.append(self._end)
            self._seg_sizes.append(sizes)
            self._memory += data
            self._end += len(data)
            self._rows += rows
            if self._file is None:
                if len(self._memory) > self._spool_bytes:
                    self._spill()
            elif len(self._memory) >= _FLUSH_BYTES:
                self._flush_locked()

    def _offset(self, row: int) -> int:
        """Byte offset where row ``row`` starts (``row_count``: the end of the data)."""
        with self._lock:
            if row >= self._rows:
                return self._end
            segment = bisect.bisect_right(self._seg_first, row) - 1
            local = row - self._seg_first[segment]
            base = self._seg_start[segment]
            if local == 0:
                return base
            offsets = self._seg_offsets.get(segment)
            if offsets is None:
                sizes = self._seg_sizes[segment]
                if sizes is None:
                    sizes = self._quoted_line_sizes(segment)
                elif isinstance(sizes, str):
                    sizes = array("q", map(int, sizes.split(",")))
                offsets = array("q", itertools.accumulate(sizes, initial=0))
                self._seg_offsets[segment] = offsets
            return base + offsets[local]

    def _quoted_line_sizes(self, segment: int) -> array[int]:
        """Byte sizes of the lines of a block appended without sizes (see :meth:`extend_block`):
        the block is read back and cut at each ``\n`` that closes a line of quoted cells."""
        last = segment + 1 == len(self._seg_start)
        start = self._seg_start[segment]
        end = self._end if last else self._seg_start[segment + 1]
        rows = (self._rows if last else self._seg_first[segment + 1]) - self._seg_first[segment]
        if self._file is None:
            data = bytes(self._memory[start:end])
        else:
            if end > self._flushed:
                self._flush_locked()
            data = os.pread(self._file.fileno(), end - start, start)
        sizes = array("q")
        size = 0
        odd = 0
        for piece in data.split(b"\n")[:-1]:
            size += len(piece) + 1
            odd ^= piece.count(b'"') & 1
            if not odd:
                sizes.append(size)
                size = 0
        if len(sizes) != rows or size:
            raise RuntimeError(f"a block of {rows} rows holds {len(sizes)} quoted lines")
        return sizes

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
        begin = self._offset(start) + len(self.separator)
        return begin, self._offset(start + rows)

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


# --------------------------------------------------------------------------------------------
# Query results as CSV, built by SQLite

#: Rows per keyset block: one statement, one ``group_concat`` and one Python call per block.
CSV_BLOCK_ROWS = 2_000
#: Rows fetched at a time on the row-by-row path (sorted queries, blocks with odd values).
CSV_FETCH_ROWS = 2_000
#: Odd rows re-read per statement by rowid (under SQLite's host-parameter limit).
_REREAD_ROWS = 500
_DOUBLE_KINDS = frozenset(("double", "currency", "percent"))
_INTEGER_KINDS = frozenset(("int", "long"))


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: SQLite functions take at most 127 arguments: a wide row is printed by several printf calls.
_PRINTF_ARGS = 100


def csv_cell_sql(
    kind: str | None, expr: str, *, nul_check: bool = True
) -> tuple[str, str, str | None]:
    """How SQLite prints one stored value as a Bulk query CSV cell (quotes not included): the
    ``printf`` conversion, its argument (never NULL), and the condition under which that text
    is exactly what the Python printers print (None: always).

    Rows that fail a condition (a decimal SQLite keeps as REAL, an integer too large for the
    shortcut below, a boolean that is not 0/1, text in a number column, text holding NUL) are
    printed in Python instead, so the SQL only has to be right for the values it accepts:

    - text of every kind (ids, strings, dates, datetimes as stored): ``%w`` doubles the quotes;
      NULL empty. ``printf`` stops a value at a NUL character, so with ``nul_check`` a row whose
      text holds one goes to Python; without it the caller vouches that no stored text does
      (:attr:`Org.text_may_hold_nul`).
    - boolean 0/1: ``false``/``true``.
    - int/long integers: their digits.
    - double/currency/percent integers: Java's ``Double.toString``: ``5.0`` below 10^7, else
      ``1.2345678E7`` (digits without trailing zeros); integers below 10^15 are exact doubles.
    - base64: only NULL (Bulk cannot select it anyway).
    """
    if kind == "boolean":
        return ("%s", f"CASE {expr} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE '' END",
                f"({expr} IS NULL OR {expr} IN (0, 1))")
    if kind in _INTEGER_KINDS:
        return "%s", expr, f"typeof({expr}) IN ('integer', 'null')"
    if kind in _DOUBLE_KINDS:
        digits = f"CAST(abs({expr}) AS TEXT)"
        scientific = (
            f"iif({expr} < 0, '-', '') || substr({digits}, 1, 1) || '.' || "
            f"iif(length(rtrim({digits}, '0')) > 1, substr(rtrim({digits}, '0'), 2), '0') || "
            f"'E' || (length({digits}) - 1)"
        )
        return (
            "%s",
            f"CASE WHEN {expr} > -10000000 AND {expr} < 10000000 THEN {expr} || '.0' "
            f"WHEN {expr} IS NULL THEN '' ELSE {scientific} END",
            f"({expr} IS NULL OR typeof({expr}) = 'integer' "
            f"AND {expr} > -1000000000000000 AND {expr} < 1000000000000000)",
        )
    if kind == "base64":
        return "%s", "''", f"{expr} IS NULL"
    return ("%w", f"ifnull({expr}, '')",
            f"ifnull(instr({expr}, char(0)), 0) = 0" if nul_check else None)


def _printf_text(text: str) -> str:
    return text.replace("%", "%%")


def csv_line_sql(exprs: Sequence[str], kinds: Sequence[str | None], delimiter: str = ",",
                 newline: str = "\n", *, nul_checks: bool = True) -> tuple[str, str | None]:
    """SQL for a whole CSV line of these expressions (every cell quoted, the newline
    included) and the condition under which it is exact (None: always).

    One ``printf`` builds the line in a single buffer (a ``||`` chain copies it once per
    operator); ``nul_checks=False`` leaves out the per-text-cell NUL test, for an org that
    holds no text with NUL (see :func:`csv_cell_sql`).
    """
    cells = [csv_cell_sql(kind, expr, nul_check=nul_checks)
             for expr, kind in zip(exprs, kinds, strict=True)]
    joint = _printf_text('"' + delimiter + '"')
    pieces = []
    for first in range(0, len(cells), _PRINTF_ARGS):
        group = cells[first : first + _PRINTF_ARGS]
        fmt = ('"' if first == 0 else joint) + joint.join(conv for conv, _, _ in group)
        if first + _PRINTF_ARGS >= len(cells):
            fmt += '"' + _printf_text(newline)
        pieces.append(f"printf({_sql_text(fmt)}, {', '.join(arg for _, arg, _ in group)})")
    conditions = [check for _, _, check in cells if check]
    return " || ".join(pieces), " AND ".join(conditions) or None


class PreparedQuery:
    """A compiled Bulk query not yet run: what a job keeps between creation and processing.

    Has the ``columns``, ``field_types`` and ``object`` of a store cursor, and ``close()``
    (nothing to release), so it can stand where an open cursor used to.
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.columns = list(compiled.columns)
        self.field_types = list(compiled.field_types)
        self.object = compiled.object

    def close(self) -> None:
        """Nothing to release: the statement runs only when the job is processed."""


def spool_csv_query(
    org: Any,
    compiled: Any,
    result: ResultFile,
    fallback: Callable[[list[tuple[Any, ...]]], list[str]],
    *,
    delimiter: str = ",",
    newline: str = "\n",
    block_rows: int = CSV_BLOCK_ROWS,
) -> Generator[int, None, None]:
    """Write a compiled query's rows into ``result`` as CSV lines built by SQLite itself.

    Yields the number of rows appended after each step (a block or a fetched chunk), so the
    caller can count progress and stop early (an aborted job). Three paths, all giving the
    bytes ``fallback`` would give:

    - Unsorted queries (rows in ``t0."Id"`` order) are read in keyset blocks: one statement per
      ``block_rows`` rows returns the block's lines joined by ``group_concat``, so Python
      does nothing per row (:meth:`ResultFile.extend_block`).
    - Sorted queries, and blocks holding a value SQLite cannot print exactly (see
      :func:`csv_cell_sql`), are fetched line by line; such rows come back as their rowid and
      are re-read and printed by ``fallback``.
    - Queries whose select list has parameters (polymorphic ``Type`` columns) or that were not
      built by the SOQL compiler are fetched raw and printed by ``fallback`` entirely.

    ``fallback(rows)`` turns raw rows (stored values in select order) into finished lines.
    """
    parts = getattr(compiled, "parts", None)
    if parts is None or parts.expr_params:
        for chunk in org.iter_sql(compiled.sql, compiled.params, chunk_rows=CSV_FETCH_ROWS):
            result.extend_text(fallback(chunk))
            yield len(chunk)
        return
    # Row by row (sorted queries, blocks with odd rows) always checks text for NUL: the rows
    # come from one long statement that writes may interleave with.
    line, exact = csv_line_sql(parts.exprs, compiled.field_types, delimiter, newline)
    line_or_rowid = f"CASE WHEN {exact} THEN CAST({line} AS BLOB) ELSE t0.rowid END" if exact \
        else f"CAST({line} AS BLOB)"

    def row_by_row(extra_where: Sequence[str], extra_params: Sequence[Any]) -> Iterator[int]:
        sql = parts.sql(line_or_rowid, extra_where=extra_where)
        params = [*parts.where_params, *extra_params, *parts.order_params]
        if parts.limit is not None:
            params.append(parts.limit)
        for chunk in org.iter_sql(sql, params, chunk_rows=CSV_FETCH_ROWS):
            lines = [row[0] for row in chunk]
            odd = [i for i, value in enumerate(lines) if type(value) is int]
            if odd:
                printed = _print_rows(org, parts, [lines[i] for i in odd], fallback)
                for i in odd:
                    lines[i] = printed[lines[i]]
            result.extend(lines)
            yield len(lines)

    if parts.sorted:
        yield from row_by_row((), ())
        return
    block_sql: dict[bool, str] = {}

    def block_statement(nul_checks: bool) -> str:
        sql = block_sql.get(nul_checks)
        if sql is None:
            line, exact = csv_line_sql(parts.exprs, compiled.field_types, delimiter, newline,
                                       nul_checks=nul_checks)
            line_sql = f"iif({exact}, {line}, NULL)" if exact else line
            inner = parts.sql(f'{line_sql} AS l, t0."Id" AS k', extra_where=['t0."Id" > ?'],
                              limit=False) + " LIMIT ?"
            # No sizes: every line is of quoted cells, so the result file can find where
            # each ends in the rare block a page starts inside.
            sql = block_sql[nul_checks] = (
                "SELECT CAST(group_concat(l, '') AS BLOB), count(l), count(*), max(k) "
                f"FROM ({inner})"
            )
        return sql

    remaining = parts.limit
    last = ""  # every Id sorts after the empty string
    while remaining is None or remaining > 0:
        size = block_rows if remaining is None else min(block_rows, remaining)
        # Text with NUL needs a check per text cell (printf would cut it short); an org that
        # has never stored any is spared that. The org sets its flag under the lock it holds
        # while a block runs, so if it is still clear after the block, no such text was there.
        nul_checks = _text_may_hold_nul(org)
        ((data, exact_rows, rows, high),) = org.execute_sql(
            block_statement(nul_checks), [*parts.where_params, last, size]
        )
        if not nul_checks and _text_may_hold_nul(org):
            continue  # text with NUL was written meanwhile: run this block again with checks
        if not rows:
            return
        if exact_rows == rows:
            result.extend_block(data, None, rows)
            yield rows
        else:
            yield from row_by_row(['t0."Id" > ?', 't0."Id" <= ?'], (last, high))
        if remaining is not None:
            remaining -= rows
        if rows < size:
            return
        last = high


def _text_may_hold_nul(org: Any) -> bool:
    """Whether the org may store text with a NUL character (True for an org that cannot say)."""
    return bool(getattr(org, "text_may_hold_nul", True))


def _print_rows(org: Any, parts: Any, rowids: list[int],
                fallback: Callable[[list[tuple[Any, ...]]], list[str]]) -> dict[int, bytes]:
    """Re-read rows by rowid and print them with ``fallback``: rowid -> encoded line."""
    printed: dict[int, bytes] = {}
    select = "t0.rowid, " + ", ".join(parts.exprs)
    for first in range(0, len(rowids), _REREAD_ROWS):
        batch = rowids[first : first + _REREAD_ROWS]
        marks = ", ".join("?" * len(batch))
        rows = org.execute_sql(f"SELECT {select} FROM {parts.source} WHERE t0.rowid IN ({marks})",
                               batch)
        lines = fallback([row[1:] for row in rows])
        for row, text in zip(rows, lines, strict=True):
            printed[row[0]] = text.encode("utf-8")
    return printed
