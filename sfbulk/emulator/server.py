"""Serve the emulator with uvicorn in a background thread (tests, benchmarks and the CLI).

The socket is bound here, before uvicorn starts, so that port 0 (any free port) works and the
caller learns the real port at once; :func:`run_in_thread` returns only when the server accepts
connections.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from sfbulk.emulator.app import EmulatorState, create_app

logger = logging.getLogger(__name__)

#: Young-generation collection threshold while the emulator serves. Ingest builds tens of
#: thousands of short-lived row lists and dicts per batch; at CPython's default of 700
#: allocations the collector ran ~1,800 young and ~170 older collections (about 1 s) over
#: ``bench/emulator_bench.py --records 200000 --ingest-batches 5 --bulk2-ingest-rows 50000``,
#: against ~17 young ones (about 0.25 s) and no older ones at 50,000.
GC_GEN0_THRESHOLD = 50_000


def tune_gc(*, freeze: bool = False) -> None:
    """Collect garbage less often while the emulator serves; the process-wide setting is raised,
    never lowered (a caller that chose a higher threshold keeps it).

    Args:
        freeze: Also move every object alive now to the permanent generation, so full
            collections stop rescanning start-up state (modules, the org catalog). Only the
            long-running CLI does this: a test process starting many servers would keep every
            earlier cycle alive.
    """
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 and gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, max(gen1, 20), max(gen2, 20))
    if freeze:
        gc.collect()
        gc.freeze()


class RunningServer:
    """An emulator serving in a background thread.

    Attributes:
        url: Base URL, ``http://127.0.0.1:PORT`` (what ``instance_url`` points at).
        state: The emulator state behind it.
        host: The bound address.
        port: The bound port.
    """

    def __init__(
        self,
        state: EmulatorState,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
    ) -> None:
        self.state = state
        self._server = server
        self._thread = thread
        self._socket = sock
        self.host, self.port = sock.getsockname()[:2]
        self.url = state.url

    def __repr__(self) -> str:
        return f"RunningServer(url={self.url!r})"

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> None:
        """Stop serving and release the Bulk workers. Idempotent.

        Args:
            timeout: Seconds to wait for the server thread (twice: graceful, then forced).
            wait: Whether to wait for the server thread to end. uvicorn takes about 0.2 s to
                wind down; tests that start a server each pass False, since nothing they do
                afterwards depends on the thread being gone (it is a daemon thread).
        """
        if self._thread.is_alive():
            self._server.should_exit = True
            if wait:
                self._thread.join(timeout)
                if self._thread.is_alive():
                    self._server.force_exit = True
                    self._thread.join(timeout)
        if wait or not self._thread.is_alive():
            self._socket.close()
        self.state.close()

    @property
    def running(self) -> bool:
        """Whether the server thread is still alive."""
        return self._thread.is_alive()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio disables Nagle's algorithm on accepted connections only when
    # it does, and with Nagle on, a keep-alive client waits ~40 ms for every response body
    # (written after its headers) until the delayed ACK. The listener's TCP_NODELAY is
    # inherited by accepted sockets too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    """The base URL clients use for a bound address (wildcards become loopback)."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - only naming the wildcard, not binding it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def run_in_thread(
    state: EmulatorState,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 15.0,
) -> RunningServer:
    """Serve ``state`` on ``host:port`` (0 = a free port) from a daemon thread.

    Returns once the server accepts connections; ``state.url`` and the returned object's
    ``url`` are then the real address. Raises the process's garbage collection threshold
    (:func:`tune_gc`): ingest allocates too many short-lived rows for CPython's default.

    Raises:
        OSError: when the address cannot be bound.
        RuntimeError: when uvicorn does not start within ``startup_timeout`` seconds.
    """
    sock = _bind(host, port)
    tune_gc()
    bound_host, bound_port = sock.getsockname()[:2]
    state.url = url_for(bound_host, bound_port)
    state.settings.host = bound_host
    state.settings.port = bound_port
    config = uvicorn.Config(
        create_app(state),
        http="h11",
        loop="asyncio",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=75,
        # Large uploads and result streams must not be cut by a shutdown grace period in tests.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"sfbulk-emulator:{bound_port}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the emulator at {state.url} stopped while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the emulator at {state.url} did not start in {startup_timeout}s")
        time.sleep(0.005)
    logger.info("emulator listening on %s", state.url)
    return RunningServer(state, server, thread, sock)
