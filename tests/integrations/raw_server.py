"""A tiny HTTP server of the tests' own that answers scripted raw bytes and records requests."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request as it arrived: request line, headers (lower-case names), body."""

    line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawServer:
    """Answers every request with `answer` (raw bytes), then closes; keeps what it received."""

    url: str
    answer: bytes
    received: list[Received] = field(default_factory=list)
    every_s: float = 0.0  # when set, the answer goes out one byte at a time


def _read_request(sock: socket.socket) -> Received | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Received(line, headers, body)


@contextmanager
def raw_server(answer: bytes, every_s: float = 0.0) -> Iterator[RawServer]:
    """A server on a free loopback port, stopped when the block ends."""
    state = RawServer(url="", answer=answer, every_s=every_s)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            received = _read_request(self.request)
            if received is None:
                return
            state.received.append(received)
            try:
                if state.every_s:
                    for index in range(len(state.answer)):
                        self.request.sendall(state.answer[index : index + 1])
                        time.sleep(state.every_s)
                else:
                    self.request.sendall(state.answer)
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def response(status: int, body: bytes, *headers: str) -> bytes:
    """Raw HTTP/1.1 response bytes with a Content-Length matching `body` unless one is given."""
    lines = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
