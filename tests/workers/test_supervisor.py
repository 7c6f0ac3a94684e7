"""`conveyor up`'s supervisor with real child processes: restarts forever with backoff, reports."""

from __future__ import annotations

import sys
import time

import pytest

import workers.supervisor as supervisor
from workers.supervisor import Child, ChildFailed, Supervisor, restart_delay_s


def _child(name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code])


def _watch(sup: Supervisor, seconds: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines += sup.check()
        time.sleep(0.02)
    return lines


def test_restart_delay_doubles_per_failure_in_a_row_up_to_the_cap() -> None:
    assert [restart_delay_s(n, 0.5, 4.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_a_child_that_keeps_failing_slowly_is_restarted_without_a_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker that runs a while, then exits 1 (a broker it cannot reach), each time;
    # "a while" counts as slow here and as a stable run after 0.3 s
    monkeypatch.setattr(supervisor, "FAST_FAILURE_S", 0.1)
    monkeypatch.setattr(supervisor, "STABLE_AFTER_S", 0.3)
    monkeypatch.setattr(supervisor, "RESTART_BASE_S", 0.05)
    child = _child("worker", "import sys, time; time.sleep(0.35); sys.exit(1)")
    sup = Supervisor([child])
    sup.start()
    try:
        # When it is watched until it failed twice the old cap of 3 (30 s at most: a loaded
        # machine starts Python slowly)
        lines: list[str] = []
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and child.restarts < 6:
            lines += _watch(sup, 0.5)
    finally:
        sup.stop()
    # Then it was restarted every time, and each exit was reported with its code and the wait
    exits = [line for line in lines if "exited with code 1" in line]
    assert len(exits) >= 6 and child.restarts >= 6
    assert all("restarting in" in line for line in exits)


def test_restarts_back_off_while_a_child_fails_again_and_again() -> None:
    # Given a child that exits at once, every time
    child = _child("beat", "raise SystemExit(2)")
    sup = Supervisor([child])
    sup.start()
    try:
        # When it is watched for 2 s
        lines = _watch(sup, 2.0)
    finally:
        sup.stop()
    # Then the waits between restarts grew (0.5, 1.0, ...), instead of a tight restart loop
    waits = [
        float(line.split("restarting in ")[1].split("s")[0])
        for line in lines
        if "restarting" in line
    ]
    assert waits[:2] == [0.5, 1.0] and len(waits) <= 3


def test_a_child_that_dies_right_after_starting_every_time_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a child that cannot start at all (a configuration error), and short waits
    monkeypatch.setattr(supervisor, "RESTART_BASE_S", 0.01)
    monkeypatch.setattr(supervisor, "RESTART_CAP_S", 0.02)
    monkeypatch.setattr(supervisor, "MAX_FAST_FAILURES", 4)
    sup = Supervisor([_child("api", "raise SystemExit(3)")])
    sup.start()
    # When it is watched, Then the supervisor gives up, saying why
    try:
        with pytest.raises(ChildFailed, match="4 times in a row"):
            _watch(sup, 10.0)
    finally:
        sup.stop()
