"""A total deadline for one HTTP call: at the deadline its socket is shut, whatever it is doing.

Socket timeouts bound each read, not the call: a provider that drips its answer one byte
every 2 s never trips a 3 s read timeout. So every call with a deadline registers a `Watch`;
the connection it runs on attaches its socket once the request is written (see
`WatchedHTTPConnection`), and one daemon thread per client shuts that socket at the deadline.
The blocked read then fails at once, and the client, seeing `Watch.cut`, reports a timeout.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from contextvars import ContextVar
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


def _shut(sock: Any) -> None:
    # The plain socket's shutdown, also for an SSLSocket: it wakes a blocked recv in another
    # thread without touching the TLS object that thread is using. TLS inside a proxy tunnel
    # (urllib3's SSLTransport) keeps the real socket in `.socket`.
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


class Watch:
    """One call's deadline and, once sent, the socket to shut when it passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._sock: Any = None
        self._expired = False
        self.done = False
        self.cut = False  # a socket was shut because the deadline passed

    def attach(self, sock: Any) -> None:
        """The request went out on `sock`; shut it now if the deadline already passed."""
        if sock is None:
            return
        with self._lock:
            if self.done:
                return
            self._sock = sock
            if self._expired:
                self.cut = True
                _shut(sock)

    def expire(self) -> None:
        """The deadline passed: shut the socket if the call is still on one."""
        with self._lock:
            if self.done:
                return
            self._expired = True
            if self._sock is not None:
                self.cut = True
                _shut(self._sock)

    def finish(self) -> None:
        """The call is over; the watch no longer touches its socket."""
        with self._lock:
            self.done = True
            self._sock = None


current_watch: ContextVar[Watch | None] = ContextVar("conveyor_http_watch", default=None)


# Finished watches wait in the heap until their deadline comes up; past this many entries the
# heap is rebuilt without them, so a burst of fast calls with long deadlines stays small.
PRUNE_AT = 1024
_start_lock = threading.Lock()


class Watchdog:
    """One thread that expires watches at their deadlines, started lazily (again after fork)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None
        self._prune_at = PRUNE_AT

    def _start(self) -> None:
        # A forked child has none of its parent's threads and may hold a copy of a lock that
        # was taken at fork time: it starts over with a fresh condition, heap and thread.
        with _start_lock:
            if self._pid == os.getpid():
                return
            self._cond = threading.Condition()
            self._heap = []
            threading.Thread(target=self._run, name="http-watchdog", daemon=True).start()
            self._pid = os.getpid()

    def watch(self, deadline: float) -> Watch:
        """A new watch for a call that must end by `deadline` (time.monotonic())."""
        if self._pid != os.getpid():
            self._start()
        watch = Watch(deadline)
        with self._cond:
            if len(self._heap) > self._prune_at:
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._prune_at = max(PRUNE_AT, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._heap[0][2] is watch:
                self._cond.notify()
        return watch

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)[2].expire()


class _AttachOnResponse:
    """Attaches the socket to the current call's watch once the request has been written."""

    sock: Any

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = current_watch.get()
        if watch is not None:
            watch.attach(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class WatchedHTTPConnection(_AttachOnResponse, HTTPConnection):
    """An HTTP connection whose socket a call's watch can shut."""


class WatchedHTTPSConnection(_AttachOnResponse, HTTPSConnection):
    """An HTTPS connection whose socket a call's watch can shut."""


class WatchedHTTPPool(HTTPConnectionPool):
    """A pool of watched HTTP connections."""

    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSPool(HTTPSConnectionPool):
    """A pool of watched HTTPS connections."""

    ConnectionCls = WatchedHTTPSConnection


WATCHED_POOLS: dict[str, type[HTTPConnectionPool]] = {
    "http": WatchedHTTPPool,
    "https": WatchedHTTPSPool,
}
