"""A client-side bound on every PostgreSQL round trip: a reply that never comes is cut off.

`statement_timeout` is enforced by the server and TCP keepalives only probe idle connections,
so a network partition (packets vanish, nothing is refused) leaves a client blocked in `recv`
for as long as the partition lasts. The watchdog notes when each connection sends a statement,
commit, rollback or ping and, once the reply is `bound_s` late, shuts the socket down: the
blocked call fails at once with a disconnect error, SQLAlchemy invalidates the connection, and
the caller gets an `OperationalError` it can answer (the API: `503 database_unavailable`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)

TICK_S = 0.1


class RoundTripWatchdog:
    """Cuts the socket of any connection whose round trip has run past `bound_s` seconds."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self._armed: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def arm(self, dbapi_connection: Any, bound_s: float | None = None) -> None:
        """A round trip on this connection starts now (bounded by `bound_s` if given)."""
        deadline = time.monotonic() + (self.bound_s if bound_s is None else bound_s)
        with self._lock:
            self._armed[id(dbapi_connection)] = (deadline, dbapi_connection)
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            self._start()

    def disarm(self, dbapi_connection: Any) -> None:
        """The round trip on this connection is over."""
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            with self._lock:
                late = [key for key, (deadline, _) in self._armed.items() if deadline <= now]
                cut = [self._armed.pop(key)[1] for key in late]
            for dbapi_connection in cut:
                _shutdown(dbapi_connection)


def _shutdown(dbapi_connection: Any) -> None:
    """Shut the connection's socket down under the blocked call (the fd stays the driver's)."""
    try:
        fd = dbapi_connection.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
    except Exception:  # already closed: nothing is blocked on it
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()
    log.warning("db.round_trip_cut")
