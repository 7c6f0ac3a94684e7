"""Run a group of child processes as one: start, watch, restart with backoff, stop them all.

A child that exits is restarted after a wait that doubles with each failure in a row (up to
`RESTART_CAP_S`), and every exit is reported. A child that ran for `STABLE_AFTER_S` before it
failed starts over at the shortest wait, so a worker that fails slowly (a broker outage now and
then) is restarted for as long as it takes. Only a child that keeps dying within
`FAST_FAILURE_S` of starting, `MAX_FAST_FAILURES` times in a row, is given up on: that is a
configuration error a restart will not cure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

STOP_GRACE_S = 10.0
RESTART_BASE_S = 0.5
RESTART_CAP_S = 30.0
STABLE_AFTER_S = 60.0
FAST_FAILURE_S = 5.0
MAX_FAST_FAILURES = 10


def restart_delay_s(
    failures: int, base_s: float = RESTART_BASE_S, cap_s: float = RESTART_CAP_S
) -> float:
    """Wait before restart number `failures` (1-based) of a failing streak: base·2^(n-1), capped."""
    return float(min(cap_s, base_s * 2 ** max(failures - 1, 0)))


@dataclass
class Child:
    """One supervised process: its name, command line and the process while it runs."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0  # restarts over the supervisor's life
    failures: int = 0  # exits in the current streak (reset after a stable run)
    fast_failures: int = 0  # exits within FAST_FAILURE_S of starting, in a row
    started_at: float = 0.0
    restart_at: float | None = None  # when a pending restart is due (monotonic)

    def start(self) -> None:
        """Spawn the process in its own session so signals reach only it."""
        self.process = subprocess.Popen(
            list(self.argv), env={**os.environ, **self.env}, start_new_session=True
        )
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        """The running process id, if started."""
        return self.process.pid if self.process else None


class Supervisor:
    """Start children, restart one that exits (with backoff, loudly), stop all on request."""

    def __init__(
        self, children: Sequence[Child], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.children = list(children)
        self._stopping = False
        self._clock = clock

    def start(self) -> None:
        """Start every child in order."""
        for child in self.children:
            child.start()

    def check(self) -> list[str]:
        """Report children that exited and schedule or perform their restarts.

        Raises ChildFailed when a child keeps dying right after it starts.
        """
        problems: list[str] = []
        now = self._clock()
        for child in self.children:
            proc = child.process
            if proc is None or self._stopping:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    child.restarts += 1
                    problems.append(f"{child.name} restarted (pid {child.pid})")
                continue
            if proc.poll() is None:
                continue
            problems.append(self._exited(child, proc, now))
        return problems

    def _exited(self, child: Child, proc: subprocess.Popen[bytes], now: float) -> str:
        ran_s = now - child.started_at
        if ran_s >= STABLE_AFTER_S:
            child.failures = 0
        child.failures += 1
        child.fast_failures = child.fast_failures + 1 if ran_s < FAST_FAILURE_S else 0
        line = (
            f"{child.name} (pid {proc.pid}) exited with code {proc.returncode} after {ran_s:.1f}s"
        )
        if child.fast_failures >= MAX_FAST_FAILURES:
            raise ChildFailed(
                f"{line}; it died within {FAST_FAILURE_S:.0f}s of starting "
                f"{child.fast_failures} times in a row, giving up"
            )
        delay = restart_delay_s(child.failures, RESTART_BASE_S, RESTART_CAP_S)
        child.restart_at = now + delay
        return f"{line}; restarting in {delay:.1f}s (failure {child.failures} in a row)"

    def run_until_signal(self, poll_s: float = 0.5) -> None:
        """Watch the children until SIGINT/SIGTERM, printing each exit and restart."""
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
    """A child kept dying right after it started; restarting it will not help."""
