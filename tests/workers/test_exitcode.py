"""A worker's exit status: zero only for a stop someone asked for."""

from __future__ import annotations

import sys
from typing import NoReturn

import pytest
from celery.signals import worker_shutting_down

import workers.exitcode as exitcode
from workers.exitcode import EXIT_UNASKED, run_worker


@pytest.fixture(autouse=True)
def not_asked() -> None:
    """Each test starts in a process where no shutdown was requested."""
    exitcode._asked.clear()


def _celery_exits(code: int | None) -> NoReturn:
    sys.exit(code)


def test_a_worker_that_stops_by_itself_with_status_0_exits_non_zero() -> None:
    # Given no shutdown signal, When Celery's main returns or exits 0 (an unrecoverable error)
    # Then the status says it failed, so a supervisor restarts it
    assert run_worker(lambda: _celery_exits(0)) == EXIT_UNASKED
    assert run_worker(lambda: None) == EXIT_UNASKED


def test_a_worker_stopped_by_a_signal_exits_0_and_failures_keep_their_status() -> None:
    # Given a failing main, Then its own status is kept
    assert run_worker(lambda: _celery_exits(1)) == 1
    # Given SIGTERM reached Celery (it sends worker_shutting_down), Then 0 stays 0
    worker_shutting_down.send(sender="w@h", sig="SIGTERM", how="Warm", exitcode=0)
    assert run_worker(lambda: _celery_exits(0)) == 0
