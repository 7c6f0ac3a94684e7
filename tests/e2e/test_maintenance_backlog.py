"""Sweeps that queued up behind busy workers start together: each stale job goes out once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings
from store.db import get_database
from store.jobs import NEVER_PUBLISHED
from store.keys import IssuedKey
from store.models import Attempt, Job
from store.states import JobState
from tasks.entry import SWEEP_TASK
from tasks.publish import producer_app
from tests.e2e.stack import stack_env, start_worker
from tests.support.procs import wait_until
from tests.tasks.factories import RATES, make_job

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = 200
QUEUED_SWEEPS = 20
WORKERS = 2


def _count(settings: Settings, stmt: object) -> int:
    with get_database(settings).session() as session:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]


def test_sweeps_queued_behind_busy_workers_republish_each_job_once(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given 200 queued jobs whose publish was lost (flagged for the sweeper)
    s = fresh_settings
    ids = [make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES) for _ in range(JOBS)]
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=NEVER_PUBLISHED))
    # And 20 sweep passes waiting in the maintenance queue (beat kept sending while the
    # workers were busy)
    app = producer_app(s)
    for _ in range(QUEUED_SWEEPS):
        app.send_task(SWEEP_TASK, queue="maintenance")
    # When workers start and take the passes all at once
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox)
    workers = [start_worker(env, logs_dir, f"backlog{n}") for n in range(WORKERS)]
    try:
        wait_until(
            lambda: (
                _count(
                    s, select(func.count()).select_from(Job).where(Job.state == JobState.SUCCEEDED)
                )
                == JOBS
            ),
            "every job to succeed",
            timeout=90,
            watch=workers,
        )
    finally:
        for worker in workers:
            worker.stop()
    # Then each job was published once: no delivery found its job already taken
    duplicates = _count(
        s, select(func.count()).select_from(Attempt).where(Attempt.outcome == "duplicate")
    )
    print(f"{duplicates} duplicate attempt rows for {JOBS} jobs, {QUEUED_SWEEPS} queued sweeps")
    assert duplicates == 0
