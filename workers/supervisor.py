"""Run a group of child processes as one: start, watch, report crashes, stop them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STOP_GRACE_S = 10.0
MAX_RESTARTS = 3


@dataclass
class Child:
    """One supervised process: its name, command line and the process while it runs."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        """Spawn the process in its own session so signals reach only it."""
        self.process = subprocess.Popen(
            list(self.argv), env={**os.environ, **self.env}, start_new_session=True
        )

    @property
    def pid(self) -> int | None:
        """The running process id, if started."""
        return self.process.pid if self.process else None


class Supervisor:
    """Start children, restart one that crashes (a few times, loudly), stop all on request."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self._stopping = False

    def start(self) -> None:
        """Start every child in order."""
        for child in self.children:
            child.start()

    def check(self) -> list[str]:
        """Report children that exited; restart them while they have restarts left."""
        problems: list[str] = []
        for child in self.children:
            proc = child.process
            if proc is None or proc.poll() is None or self._stopping:
                continue
            problems.append(f"{child.name} (pid {proc.pid}) exited with code {proc.returncode}")
            if child.restarts < MAX_RESTARTS:
                child.restarts += 1
                child.start()
                problems[-1] += f"; restarted ({child.restarts}/{MAX_RESTARTS})"
            else:
                problems[-1] += "; giving up"
                raise ChildFailed(problems[-1])
        return problems

    def run_until_signal(self, poll_s: float = 0.5) -> None:
        """Watch the children until SIGINT/SIGTERM, printing each crash."""
        stop = {"now": False}

        def _handler(_signum: int, _frame: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)
        while not stop["now"]:
            for line in self.check():
                print(f"conveyor: {line}", file=sys.stderr, flush=True)
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM every child by pid, wait a grace period, then SIGKILL what is left."""
        self._stopping = True
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=5)


class ChildFailed(RuntimeError):
    """A child kept crashing after its restarts were used up."""
