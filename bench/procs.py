"""Child processes for benchmarks and tests: free ports, named deadlines, stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.05
LOG_TAIL_CHARS = 2000


class BenchError(RuntimeError):
    """A benchmark could not run: a process died or a wait passed its deadline."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_argv(*args: str) -> list[str]:
    """argv running this interpreter with `args`."""
    return [sys.executable, *args]


class Proc:
    """A child process in its own session, its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        """The last lines the process printed."""
        return self.log()[-LOG_TAIL_CHARS:]

    def check_alive(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, then SIGKILL its process group (its own session) after `timeout`."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()


def wait_until(
    predicate: Callable[[], bool],
    what: str,
    timeout: float = 30.0,
    watch: Sequence[Proc] = (),
    poll_s: float = POLL_S,
) -> float:
    """Poll `predicate` until true and return when it was seen; fail naming `what` at the deadline.

    A process in `watch` that exits meanwhile fails the wait at once, with its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        for proc in watch:
            proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll_s)


def http_ok(url: str) -> Callable[[], bool]:
    """A predicate: `url` answers with a status below 500."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    return check
