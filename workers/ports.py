"""Is a TCP port free to listen on, and if not, which process holds it.

`conveyor up` asks before it starts anything: a port already served by another stack would
otherwise answer its readiness checks, and it would announce "Conveyor is up" over someone
else's API. The holder is found with psutil (Linux, macOS, BSD, Windows) rather than by
reading `/proc/net/tcp` and `/proc/*/fd` by hand, which works on Linux only.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Holder:
    """A process listening on a port: its pid and command line (or why it is unknown)."""

    pid: int | None
    command: str

    def __str__(self) -> str:
        if self.pid is None:
            return self.command
        return f"pid {self.pid} ({self.command})"


def bind_error(host: str, port: int) -> OSError | None:
    """Why this process could not listen on host:port now, or None if it could.

    SO_REUSEADDR as uvicorn and Flower set it: a socket of a stopped run still in TIME_WAIT
    does not count as taken; one that listens does.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def port_is_free(host: str, port: int) -> bool:
    """Whether this process could listen on host:port now (the bind uvicorn will make)."""
    return bind_error(host, port) is None


def is_taken(error: OSError) -> bool:
    """Whether a bind error means another socket holds the port."""
    return error.errno == errno.EADDRINUSE


def _command(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        return " ".join(argv)[:120] if argv else proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "process details not visible"


def holder_of(port: int) -> Holder:
    """The process listening on `port` (any address), or a Holder saying it could not be seen."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        # macOS lists other users' sockets only to root.
        return Holder(None, f"another process (try `lsof -nP -iTCP:{port} -sTCP:LISTEN`)")
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return Holder(None, "a process of another user (run as root to see which)")
            return Holder(conn.pid, _command(conn.pid))
    return Holder(None, "another process")
