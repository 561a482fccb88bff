"""Download threads: each stream's Bulk job runs in its own thread, records wait in a small queue.

Only the Salesforce side runs in these threads (job creation, polling, downloading pages, parsing
and typing cells). Every Singer message, every state change and every SDK call happens in the
main thread, which takes records from whichever stream has some ready; so stdout stays
well-formed and the SDK's state handling runs exactly as it does for one stream at a time.

Memory is bounded: a queue holds at most ``depth`` chunks of ``chunk_size`` records, and the
thread stops downloading while its queue is full.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)


class PrefetchCancelled(Exception):
    """The run stopped this stream's download (another stream failed, or shutdown)."""


_END = object()


class Prefetch:
    """Records of one stream, produced by a download thread and consumed by the main thread.

    Args:
        name: The stream name (for the thread name and messages).
        source: Called in the thread; returns the iterator of records (typically a generator
            that owns the Bulk job, so closing it aborts an unfinished job).
        notify: Called (from the thread) after each chunk is queued, to wake the consumer.
        chunk_size: Records per queued chunk.
        depth: Chunks the queue holds before the thread waits.
    """

    def __init__(
        self,
        name: str,
        source: Callable[[], Iterator[dict[str, Any]]],
        notify: Callable[[], None],
        *,
        chunk_size: int = 500,
        depth: int = 8,
    ) -> None:
        self.name = name
        self._source = source
        self._notify = notify
        self._chunk_size = chunk_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._partial: list[dict[str, Any]] = []
        self._finished = False
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"tap-sfbulk:{name}", daemon=True)

    def start(self) -> None:
        """Start downloading."""
        self.thread.start()

    def cancel(self) -> None:
        """Ask the thread to stop; its generator is closed, which aborts an unfinished job."""
        self.cancelled.set()

    def ready(self) -> bool:
        """Whether the consumer can take the next item without waiting.

        Records still gathering into a chunk count too (the consumer takes them as they are),
        so rows that arrive just before a long wait on the next page or batch are not held back.
        """
        if self._buffer or self._finished or not self._queue.empty():
            return True
        with self._lock:
            return bool(self._partial)

    # -- producer side --------------------------------------------------------------------------

    def _put(self, item: Any) -> None:
        while True:
            if self.cancelled.is_set():
                raise PrefetchCancelled(f"stream {self.name} was stopped")
            try:
                self._queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            self._notify()
            return

    def _run(self) -> None:
        records: Iterator[dict[str, Any]] | None = None
        try:
            records = self._source()
            for record in records:
                with self._lock:
                    self._partial.append(record)
                    full = len(self._partial) >= self._chunk_size
                    if full:
                        chunk, self._partial = self._partial, []
                if full:
                    # Put before appending more, so chunks stay in order.
                    self._put(chunk)
            with self._lock:
                chunk, self._partial = self._partial, []
            if chunk:
                self._put(chunk)
            self._put(_END)
        except PrefetchCancelled:
            logger.info("Stopped downloading stream %s", self.name)
        except BaseException as exc:  # handed to the consumer, which raises it
            try:
                with self._lock:
                    chunk, self._partial = self._partial, []
                if chunk:
                    self._put(chunk)
                self._put(exc)
            except PrefetchCancelled:
                logger.info("Stream %s failed after it was stopped: %s", self.name, exc)
        finally:
            close = getattr(records, "close", None) if records is not None else None
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    logger.warning("Closing the download of stream %s failed: %s",
                                   self.name, exc)

    # -- consumer side --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            while self._buffer:
                yield self._buffer.popleft()
            if self._finished:
                return
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                with self._lock:
                    item, self._partial = self._partial, []
                if not item:
                    item = self._queue.get()
            if item is _END:
                self._finished = True
                return
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._buffer.extend(item)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did."""
        self.thread.join(timeout)
        return not self.thread.is_alive()
