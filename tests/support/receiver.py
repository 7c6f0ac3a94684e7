"""A small local HTTP receiver for outbound tests: records requests, answers from a script."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    """What the receiver answers: a status, headers, a body, and an optional drip delay."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0
    drip_s: float = 0.0  # seconds between body bytes


@dataclass
class Receiver:
    """A running receiver: its port, what it got, and the function choosing each reply."""

    port: int
    received: list[Received]
    answer: Callable[[Received], Reply]

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        """A URL for `path` on this receiver under `host`."""
        return f"http://{host}:{self.port}{path}"


@contextmanager
def receiver(
    answer: Callable[[Received], Reply] | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[Receiver]:
    """Run a threaded HTTP server (HTTPS with `tls`) on a free port until the block ends."""
    state = Receiver(port=0, received=[], answer=answer or (lambda _: Reply()))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
                time.monotonic(),
            )
            with lock:
                state.received.append(got)
            reply = state.answer(got)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                if reply.drip_s:
                    for byte in reply.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(reply.drip_s)
                else:
                    self.wfile.write(reply.body)
            except OSError:
                pass

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            return

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256  # many workers' connections at once, none refused
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
