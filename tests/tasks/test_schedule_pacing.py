"""Beat's firing after a pause, after being late, and at the tenant's job quota, with an
injected clock on real SQLite and PostgreSQL: slots never fire in a burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from api.schedules import _fields
from config.settings import Settings
from store.db import get_database
from store.jobs import add_job
from store.keys import IssuedKey
from store.models import Job, Schedule, ScheduleRun
from store.schedules import add_run, get_schedule, replace_schedule, run_stats, set_enabled
from tasks.schedule_spec import ScheduleFields, check, merged
from tasks.schedules import job_for
from tests.tasks.test_schedule_firing import Clock, job_count, make, runner, runs

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def schedule_row(settings: Settings, key: IssuedKey) -> Schedule:
    with get_database(settings).session() as session:
        row = get_schedule(session, key.tenant_id, "s")
        assert row is not None
        return row


def toggle(settings: Settings, key: IssuedKey, enabled: bool, now: datetime) -> None:
    with get_database(settings).session() as session:
        row = get_schedule(session, key.tenant_id, "s")
        assert row is not None
        set_enabled(session, row, enabled, now)


def fired_at(settings: Settings) -> list[datetime]:
    """When each job-creating run was written, oldest first."""
    with get_database(settings).session() as session:
        return list(
            session.scalars(
                select(ScheduleRun.created_at)
                .where(ScheduleRun.outcome == "fired")
                .order_by(ScheduleRun.created_at)
            )
        )


@pytest.mark.parametrize(("misfire", "jobs", "skipped"), [("skip", 0, 10), ("run_once", 1, 9)])
def test_slots_that_passed_while_paused_are_misfired_even_within_the_grace(
    settings: Settings, tenant_key: IssuedKey, misfire: str, jobs: int, skipped: int
) -> None:
    # Given a 2-second schedule (grace 30 s) paused for 20 s, beat ticking all along
    assert settings.schedule_misfire_grace_s >= 30
    clock = Clock(T0)
    make(settings, tenant_key.tenant_id, T0, interval_s=2.0, misfire=misfire, overlap="allow")
    beat = runner(settings, clock)
    toggle(settings, tenant_key, False, clock.now)
    for _ in range(20):
        clock.advance(1)
        beat.tick()
    # When it is resumed (every missed slot well within the grace) and beat ticks on
    clock.advance(0.5)
    toggle(settings, tenant_key, True, clock.now)
    beat.tick()
    # Then no burst: `skip` fires none of the 10 paused slots, `run_once` only the latest
    assert job_count(settings) == jobs
    if jobs:
        assert [t for t, _, _ in runs(settings)] == [T0 + timedelta(seconds=20)]
    row = schedule_row(settings, tenant_key)
    assert row.skipped_slots == skipped
    # And the next slot after the resume fires as usual
    assert row.next_fire_at == T0 + timedelta(seconds=22)
    clock.advance(1.6)
    beat.tick()
    assert job_count(settings) == jobs + 1


def test_patching_enabled_true_is_a_resume(settings: Settings, tenant_key: IssuedKey) -> None:
    # Given a 2-second schedule paused for 20 s
    clock = Clock(T0)
    make(settings, tenant_key.tenant_id, T0, interval_s=2.0, misfire="skip")
    toggle(settings, tenant_key, False, clock.now)
    clock.advance(20.5)
    # When a PATCH sets enabled back to true
    with get_database(settings).session() as session:
        row = get_schedule(session, tenant_key.tenant_id, "s")
        assert row is not None
        spec = check(merged(_fields(row), ScheduleFields(enabled=True)), clock.now)
        replace_schedule(session, row, spec, clock.now)
    runner(settings, clock).tick()
    # Then the paused slots are dropped as on resume
    assert job_count(settings) == 0
    assert schedule_row(settings, tenant_key).skipped_slots == 10


def test_a_late_beat_fires_its_backlog_one_slot_per_tick(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a per-second schedule, and beat that did not tick for 10 s (within the 30 s grace)
    clock = Clock(T0)
    make(settings, tenant_key.tenant_id, T0, interval_s=1.0)
    beat = runner(settings, clock)
    clock.advance(10.05)
    # When beat ticks
    sleep = beat.tick()
    # Then one slot fired, and beat sleeps a full tick before the next (the backlog is paced)
    assert job_count(settings) == 1
    assert sleep == settings.beat_tick_s
    # And tick by tick the backlog is fired, one slot each, none twice, none lost
    for _ in range(9):
        clock.advance(0.1)
        beat.tick()
    slots = [t for t, _, _ in runs(settings)]
    assert slots == [T0 + timedelta(seconds=s) for s in range(1, 11)]
    assert len(set(fired_at(settings))) == 10
    assert schedule_row(settings, tenant_key).skipped_slots == 0


def test_a_slot_is_skipped_while_the_tenant_is_at_its_open_job_quota(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a tenant allowed 2 unfinished jobs that has 2, and a per-minute schedule of it
    capped = settings.model_copy(update={"api_open_jobs_per_tenant": 2})
    clock = Clock(T0)
    make(capped, tenant_key.tenant_id, T0, interval_s=60.0)
    db = get_database(capped)
    with db.session() as session:
        row = get_schedule(session, tenant_key.tenant_id, "s")
        assert row is not None
        for _ in range(2):
            add_job(session, job_for(capped, row), clock.now)
    # When its slot comes
    clock.advance(61)
    runner(capped, clock).tick()
    # Then no job is added; the slot is recorded as skipped for the quota
    assert job_count(capped) == 2
    assert [(t, outcome) for t, outcome, _ in runs(capped)] == [
        (T0 + timedelta(seconds=60), "skipped_quota")
    ]
    # And the schedule counts it, without calling it a failure
    with db.session() as session:
        stats = run_stats(session, schedule_row(capped, tenant_key).id)
    assert (stats.recent_skipped_quota, stats.recent_failures, stats.failing_streak) == (1, 0, 0)
    # And once the tenant's jobs finish, the next slot fires
    with db.session() as session:
        session.execute(update(Job).values(state="succeeded"))
    clock.advance(60)
    runner(capped, clock).tick()
    assert job_count(capped) == 3
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 2


def test_a_slot_skipped_for_the_quota_neither_breaks_nor_extends_a_failing_streak(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule whose last slot failed, and whose next was skipped for the quota
    make(settings, tenant_key.tenant_id, T0, interval_s=60.0)
    row = schedule_row(settings, tenant_key)
    with get_database(settings).session() as session:
        add_run(session, row.id, T0 + timedelta(seconds=60), "slot", "failed", T0, error="x")
        later = T0 + timedelta(seconds=120)
        add_run(session, row.id, later, "slot", "skipped_quota", later)
    # When its statistics are read
    with get_database(settings).session() as session:
        stats = run_stats(session, row.id)
    # Then the streak still counts the failure, and the skip is counted apart
    assert (stats.failing_streak, stats.recent_failures, stats.recent_skipped_quota) == (1, 1, 1)
