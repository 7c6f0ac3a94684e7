"""A TCP proxy of the test's own between Conveyor and PostgreSQL or Redis, to stage outages.

Modes: `heal()` forwards everything; `blackhole()` forwards nothing in either direction and
answers nothing (a partition: packets vanish, nothing is refused); `refuse()` resets every open
connection and every new one at once (a database that terminates or refuses connections);
`delay(ms)` forwards each chunk that late (a slow network). Threads, one pair per connection.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from contextlib import suppress
from types import TracebackType

CHUNK = 65536
TICK_S = 0.05


class Proxy:
    """Listen on a free local port and forward to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TICK_S)
        self.port = int(self._listener.getsockname()[1])
        self.mode = "pass"
        self.delay_s = 0.0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def heal(self) -> None:
        """Forward everything again (connections cut meanwhile stay cut)."""
        self.mode, self.delay_s = "pass", 0.0

    def blackhole(self) -> None:
        """Forward nothing and answer nothing, refusing nothing."""
        self.mode = "blackhole"

    def refuse(self) -> None:
        """Reset every open connection now, and every new one as it comes."""
        self.mode = "refuse"
        with self._lock:
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def delay(self, ms: float) -> None:
        """Forward each chunk `ms` milliseconds late."""
        self.mode, self.delay_s = "pass", ms / 1000

    def stop(self) -> None:
        """Close the listener and every connection."""
        self._stopped.set()
        self._thread.join(timeout=2)
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with suppress(OSError):
                    sock.close()
            self._open.clear()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "refuse":
                _reset(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        # In a blackhole, the client's connect succeeds but nothing ever comes back.
        while self.mode == "blackhole" and not self._stopped.is_set():
            time.sleep(TICK_S)
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._open.update((client, upstream))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(TICK_S)
        while not self._stopped.is_set():
            try:
                data = source.recv(CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self.mode == "blackhole":
                continue  # the packet vanishes
            if self.delay_s:
                time.sleep(self.delay_s)
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0): the peer sees 'connection reset'."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
