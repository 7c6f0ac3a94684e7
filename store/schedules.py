"""Schedules as rows: create, read, edit, pause, delete; what is due; the slot bookkeeping.

Every write bumps `version`. Beat plans a firing from a row it read and commits it with
`advance`, a compare-and-set on (id, version): an edit, pause or delete that lands in between
makes the firing a no-op, and the next tick plans again from the new row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database
from store.models import Job, Schedule, ScheduleRun, Tenant
from store.states import TERMINAL_STATES, JobState
from store.triggers import CronTrigger, IntervalTrigger, Trigger, next_after

BUILTIN_SCOPE = "builtin"
FAILED_STATES = frozenset({JobState.FAILED, JobState.DEAD, JobState.NEEDS_REVIEW})
RECENT_RUNS = 20  # the window `recent_failures` counts over
# Runs that created no job on purpose (the previous job still running; the tenant at its quota).
SKIPPED_OUTCOMES = frozenset({"skipped_overlap", "skipped_quota"})
_TICK = timedelta(microseconds=1)
# Slots a resume walks through to count those it drops; the rest of a longer pause goes uncounted.
PAUSED_SLOTS_COUNTED = 100_000


class DuplicateSchedule(Exception):
    """The tenant already has a schedule of that name."""


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule definition, as the API or CLI hands it to the store."""

    name: str
    job_type: str
    payload: dict[str, Any]
    cron: str | None = None
    timezone: str = "UTC"
    interval_s: float | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    enabled: bool = True
    misfire: str = "skip"
    overlap: str = "allow"
    retry: dict[str, Any] | None = None


@dataclass(frozen=True)
class LastRun:
    """The latest run of a schedule: its slot, when it fired, its job and that job's state."""

    fire_time: datetime
    fired_at: datetime
    kind: str
    outcome: str
    job_id: uuid.UUID | None
    job_state: str | None
    lag_s: float | None  # fire time → the job's start, once it started


@dataclass(frozen=True)
class RunStats:
    """How a schedule's recent runs went."""

    last_run: LastRun | None = None
    recent_failures: int = 0
    failing_streak: int = 0
    recent_skipped_quota: int = 0
    recent: list[LastRun] = field(default_factory=list)


def scope_of(tenant_id: uuid.UUID | None) -> str:
    """The uniqueness scope of a schedule's name: its tenant, or the built-ins."""
    return BUILTIN_SCOPE if tenant_id is None else str(tenant_id)


def trigger_of(schedule: Schedule) -> Trigger:
    """The trigger a schedule row describes."""
    if schedule.cron is not None:
        return CronTrigger(schedule.cron, schedule.timezone)
    assert schedule.interval_s is not None
    return IntervalTrigger(schedule.interval_s, schedule.anchor_at)


def first_fire_time(schedule: Schedule, now: datetime) -> datetime | None:
    """The first slot strictly after `now`, not before `start_at`, not after `end_at`."""
    after = now
    if schedule.start_at is not None and schedule.start_at > now:
        after = schedule.start_at - _TICK
    return next_after(trigger_of(schedule), after, schedule.end_at)


def _timing(schedule: Schedule) -> tuple[Any, ...]:
    return (
        schedule.cron,
        schedule.timezone,
        schedule.interval_s,
        schedule.start_at,
        schedule.end_at,
    )


def _apply(schedule: Schedule, spec: ScheduleSpec, now: datetime) -> None:
    before = _timing(schedule) if schedule.anchor_at is not None else None
    schedule.job_type = spec.job_type
    schedule.payload = spec.payload
    schedule.retry = spec.retry
    schedule.cron = spec.cron
    schedule.timezone = spec.timezone
    schedule.interval_s = spec.interval_s
    schedule.start_at = spec.start_at
    schedule.end_at = spec.end_at
    schedule.misfire = spec.misfire
    schedule.overlap = spec.overlap
    if spec.enabled and not schedule.enabled and schedule.anchor_at is not None:
        _resume(schedule, now)  # a PATCH that enables a paused schedule resumes it
    schedule.enabled = spec.enabled
    schedule.updated_at = now
    if before == _timing(schedule):
        return  # same trigger and window: the slot sequence (and a pending slot) carries on
    schedule.anchor_at = spec.start_at or now
    schedule.next_fire_at = first_fire_time(schedule, now)


def create_schedule(
    db: Database, tenant_id: uuid.UUID, spec: ScheduleSpec, now: datetime
) -> Schedule:
    """Commit a new schedule; its first slot is the first after `now` (or after `start_at`).

    Raises DuplicateSchedule when the tenant has one of that name.
    """
    schedule = Schedule(
        id=uuid.uuid4(),
        anchor_at=None,
        scope=scope_of(tenant_id),
        tenant_id=tenant_id,
        name=spec.name,
        builtin=False,
        version=1,
        skipped_slots=0,
        created_at=now,
    )
    _apply(schedule, spec, now)
    try:
        with db.session() as session:
            session.add(schedule)
    except IntegrityError:
        raise DuplicateSchedule(spec.name) from None
    return schedule


def replace_schedule(
    session: Session, schedule: Schedule, spec: ScheduleSpec, now: datetime
) -> None:
    """Rewrite a schedule from a full spec (a PATCH merged onto it). A new trigger or window
    starts the slots afresh from `now`; other edits keep the slot sequence."""
    _apply(schedule, spec, now)
    schedule.version += 1


def set_enabled(session: Session, schedule: Schedule, enabled: bool, now: datetime) -> None:
    """Pause or resume. Slots that fell due while paused are misfired slots, whatever the
    grace: on resume `skip` drops them all and `run_once` keeps only the latest (beat fires it)."""
    if enabled and not schedule.enabled:
        _resume(schedule, now)
    schedule.enabled = enabled
    schedule.version += 1
    schedule.updated_at = now


def _resume(schedule: Schedule, now: datetime) -> None:
    """Apply the misfire policy to the slots a paused schedule let pass (counted, at most
    PAUSED_SLOTS_COUNTED of them, in `skipped_slots`)."""
    if schedule.next_fire_at is None or schedule.next_fire_at > now:
        return
    trigger = trigger_of(schedule)
    passed = 1
    latest = schedule.next_fire_at
    for fire_time in islice(trigger.times_after(latest), PAUSED_SLOTS_COUNTED):
        if fire_time > now or (schedule.end_at is not None and fire_time > schedule.end_at):
            break
        passed += 1
        latest = fire_time
    if schedule.misfire == "run_once":
        schedule.skipped_slots += passed - 1
        schedule.next_fire_at = latest
    else:
        schedule.skipped_slots += passed
        schedule.next_fire_at = next_after(trigger, now, schedule.end_at)


def get_schedule(session: Session, tenant_id: uuid.UUID, name: str) -> Schedule | None:
    """The tenant's schedule of that name, or a built-in one; None otherwise."""
    return session.scalars(
        select(Schedule).where(
            Schedule.scope.in_([scope_of(tenant_id), BUILTIN_SCOPE]), Schedule.name == name
        )
    ).first()


def list_schedules(
    session: Session, tenant_id: uuid.UUID, limit: int, after: str | None = None
) -> list[Schedule]:
    """The built-ins and the tenant's schedules, by name, keyset-paginated on the name."""
    stmt = select(Schedule).where(Schedule.scope.in_([scope_of(tenant_id), BUILTIN_SCOPE]))
    if after is not None:
        stmt = stmt.where(Schedule.name > after)
    return list(session.scalars(stmt.order_by(Schedule.name).limit(limit)))


def due_schedules(session: Session, now: datetime, limit: int) -> Sequence[Schedule]:
    """Enabled schedules whose next slot has come, earliest first."""
    return session.scalars(
        select(Schedule)
        .where(Schedule.enabled.is_(True), Schedule.next_fire_at <= now)
        .order_by(Schedule.next_fire_at)
        .limit(limit)
    ).all()


def next_due_at(session: Session) -> datetime | None:
    """The earliest next slot of any enabled schedule."""
    found: datetime | None = session.scalar(
        select(func.min(Schedule.next_fire_at)).where(Schedule.enabled.is_(True))
    )
    return found


def advance(session: Session, schedule_id: uuid.UUID, version: int, **values: Any) -> bool:
    """Compare and set: write `values` (and bump the version) only if the row is still at
    `version`; False when an edit, pause or delete came first."""
    result = session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.version == version)
        .values(version=version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def add_run(
    session: Session,
    schedule_id: uuid.UUID,
    fire_time: datetime,
    kind: str,
    outcome: str,
    now: datetime,
    job_id: uuid.UUID | None = None,
    error: str | None = None,
) -> None:
    """Record one slot; a second record of the same (schedule, fire_time) raises IntegrityError."""
    session.execute(
        insert(ScheduleRun).values(
            id=uuid.uuid4(),
            schedule_id=schedule_id,
            fire_time=fire_time,
            kind=kind,
            outcome=outcome,
            job_id=job_id,
            error=error,
            created_at=now,
        )
    )


def job_is_active(session: Session, job_id: uuid.UUID | None) -> bool:
    """Whether a job exists and has not reached a terminal state."""
    if job_id is None:
        return False
    state = session.scalar(select(Job.state).where(Job.id == job_id))
    return state is not None and JobState(state) not in TERMINAL_STATES


def run_stats(session: Session, schedule_id: uuid.UUID) -> RunStats:
    """The latest run, failures among the last `RECENT_RUNS` runs and the current failing
    streak (consecutive latest runs whose job failed, died, went to review or could not fire)."""
    rows = session.execute(
        select(ScheduleRun, Job.state, Job.started_at)
        .outerjoin(Job, Job.id == ScheduleRun.job_id)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.created_at.desc(), ScheduleRun.fire_time.desc())
        .limit(RECENT_RUNS)
    ).all()
    runs = [
        LastRun(
            fire_time=run.fire_time,
            fired_at=run.created_at,
            kind=run.kind,
            outcome=run.outcome,
            job_id=run.job_id,
            job_state=state,
            lag_s=(started - run.fire_time).total_seconds() if started is not None else None,
        )
        for run, state, started in rows
    ]

    def failed(run: LastRun) -> bool:
        return run.outcome == "failed" or (
            run.job_state is not None and JobState(run.job_state) in FAILED_STATES
        )

    streak = 0
    for run in runs:
        if run.outcome in SKIPPED_OUTCOMES or (
            run.job_state is not None and JobState(run.job_state) not in TERMINAL_STATES
        ):
            continue  # not finished yet: says nothing either way
        if not failed(run):
            break
        streak += 1
    return RunStats(
        last_run=runs[0] if runs else None,
        recent_failures=sum(1 for run in runs if failed(run)),
        failing_streak=streak,
        recent_skipped_quota=sum(1 for run in runs if run.outcome == "skipped_quota"),
        recent=runs,
    )


def seed_builtin(db: Database, name: str, task: str, interval_s: float, now: datetime) -> None:
    """Declare a built-in maintenance schedule, or update its interval (from settings)."""
    with db.session() as session:
        found = session.scalars(
            select(Schedule).where(Schedule.scope == BUILTIN_SCOPE, Schedule.name == name)
        ).first()
        if found is not None:
            if found.interval_s != interval_s or found.job_type != task:
                found.job_type = task
                found.interval_s = interval_s
                found.anchor_at = now
                found.next_fire_at = now
                found.version += 1
                found.updated_at = now
            return
    try:
        with db.session() as session:
            session.add(
                Schedule(
                    id=uuid.uuid4(),
                    scope=BUILTIN_SCOPE,
                    tenant_id=None,
                    name=name,
                    builtin=True,
                    job_type=task,
                    payload={},
                    retry=None,
                    cron=None,
                    timezone="UTC",
                    interval_s=interval_s,
                    anchor_at=now,
                    enabled=True,
                    misfire="run_once",
                    overlap="allow",
                    next_fire_at=now,
                    version=1,
                    skipped_slots=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # another beat seeded it at the same moment


def tenant_id_named(session: Session, name: str) -> uuid.UUID | None:
    """The id of the tenant called `name`, if there is one (for the CLI)."""
    found: uuid.UUID | None = session.scalar(select(Tenant.id).where(Tenant.name == name))
    return found


def delete_schedule(session: Session, schedule: Schedule) -> None:
    """Delete a schedule and, by cascade, its runs; its jobs stay."""
    session.execute(sa_delete(Schedule).where(Schedule.id == schedule.id))
