"""Firing schedules: plan a schedule's due slots, commit their jobs with the slots' run rows,
then publish the job ids (commit first, then publish; the sweeper covers a lost publish).

Each slot is fired at most once: the run row's unique (schedule, fire_time) key refuses a
second one, the compare-and-set on the schedule's version refuses a plan made from a stale
row, and, for beat, the leader's lease is fenced in the same transaction, so a leader paused
past its lease commits nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

import structlog
from celery import Celery
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings
from integrations.base import RetryPolicy
from integrations.registry import get_job_type
from store.db import Database
from store.jobs import NewJob, add_job, mark_unpublished
from store.leases import Held, fence
from store.models import Job, Schedule
from store.open_jobs import count_open_jobs
from store.schedules import add_run, advance, job_is_active, trigger_of
from store.triggers import Trigger, next_after
from tasks.policy import effective_policy
from tasks.publish import publish
from tasks.schedule_spec import InvalidSchedule, validated_payload

log = structlog.get_logger(__name__)

# Slots a plan walks through at most; a longer backlog (a per-second schedule paused for more
# than a day) is skipped as a whole, the misfire policy's catch-up run included.
MAX_CATCHUP = 100_000
# A built-in pass whose message waited longer than one interval is dropped by the worker
# (Celery's `expires`): the next one is already on its way, so passes never pile up.
MAINTENANCE_EXPIRES_FACTOR = 1


class StaleSchedule(Exception):
    """The schedule changed (edit, pause, delete, another firing) since the plan was made."""


@dataclass(frozen=True)
class Plan:
    """What to do about a schedule's due slots at `now`."""

    fire: list[datetime]  # slots that run, in order
    missed: int  # slots dropped by the misfire policy
    next_fire_at: datetime | None


@dataclass
class Fired:
    """What one firing committed: jobs to publish, built-in tasks to send."""

    jobs: list[Job] = field(default_factory=list)
    tasks: list[tuple[str, float]] = field(default_factory=list)
    skipped_overlap: int = 0
    skipped_quota: int = 0
    missed: int = 0


def plan_slots(
    trigger: Trigger,
    slot: datetime,
    now: datetime,
    grace_s: float,
    misfire: str,
    end: datetime | None = None,
) -> Plan:
    """What a tick does about the slots from `slot` up to `now`. At most one slot fires per
    tick: the oldest one still within `grace_s` of its time (beat was late; the rest of that
    backlog waits for the next ticks). Older slots are missed and the misfire policy decides:
    `skip` drops them, `run_once` runs the latest of them, when no slot is on time."""
    due = [slot, *islice(_until(trigger, slot, now), MAX_CATCHUP)]
    if end is not None:
        due = [t for t in due if t <= end]
    grace = timedelta(seconds=grace_s)
    missed = [t for t in due if now - t > grace]
    on_time = [t for t in due if now - t <= grace]
    catch_up = missed[-1:] if misfire == "run_once" else []
    fire = on_time[:1] or catch_up
    later = on_time[1:]
    return Plan(
        fire=fire,
        missed=len(missed) - (len(fire) if not on_time else 0),
        next_fire_at=later[0] if later else next_after(trigger, now, end),
    )


def _until(trigger: Trigger, slot: datetime, now: datetime) -> list[datetime]:
    found: list[datetime] = []
    for t in trigger.times_after(slot):
        if t > now or len(found) >= MAX_CATCHUP:
            break
        found.append(t)
    return found


def job_for(settings: Settings, schedule: Schedule) -> NewJob:
    """The job a schedule's slot submits, checked like any submit (raises InvalidSchedule)."""
    payload = validated_payload(schedule.job_type, schedule.payload, ("schedule",))
    job_type = get_job_type(schedule.job_type)
    assert job_type is not None
    override = RetryPolicy(**schedule.retry) if schedule.retry else None
    policy = effective_policy(settings, job_type.retry, override)
    canonical = json.dumps(
        {"schedule": str(schedule.id), "type": schedule.job_type, "payload": payload},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert schedule.tenant_id is not None
    return NewJob(
        tenant_id=schedule.tenant_id,
        type=schedule.job_type,
        queue=job_type.queue,
        payload=payload,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        max_attempts=policy.max_attempts,
        retry_policy=policy.as_dict(),
        correlation_id=f"schedule:{schedule.name}"[:100],
    )


def _room(session: Session, settings: Settings, schedule: Schedule) -> int:
    """How many more jobs the schedule's tenant may have open (its quota, as a submit's)."""
    limit = settings.api_open_jobs_per_tenant
    if limit <= 0 or schedule.tenant_id is None:
        return MAX_CATCHUP
    return limit - count_open_jobs(session, schedule.tenant_id, limit + 1)


def _record(
    session: Session,
    settings: Settings,
    schedule: Schedule,
    slots: list[datetime],
    kind: str,
    now: datetime,
    fired: Fired,
) -> uuid.UUID | None:
    # Overlap rules the slot sequence; a manual "run now" runs regardless.
    busy = (
        kind == "slot"
        and schedule.overlap == "skip"
        and job_is_active(session, schedule.last_job_id)
    )
    last_job = schedule.last_job_id
    room = _room(session, settings, schedule) if kind == "slot" else len(slots)
    for slot in slots:
        if schedule.builtin:
            assert schedule.interval_s is not None
            fired.tasks.append((schedule.job_type, schedule.interval_s))
            continue
        if busy:
            add_run(session, schedule.id, slot, kind, "skipped_overlap", now)
            fired.skipped_overlap += 1
            continue
        if room <= 0:
            add_run(session, schedule.id, slot, kind, "skipped_quota", now)
            fired.skipped_quota += 1
            continue
        try:
            new = job_for(settings, schedule)
        except InvalidSchedule as exc:
            add_run(session, schedule.id, slot, kind, "failed", now, error=exc.message)
            continue
        job = add_job(session, new, now)
        add_run(session, schedule.id, slot, kind, "fired", now, job_id=job.id)
        fired.jobs.append(job)
        room -= 1
        last_job = job.id
        busy = kind == "slot" and schedule.overlap == "skip"
    return last_job


def fire_due(
    db: Database,
    settings: Settings,
    schedule: Schedule,
    now: datetime,
    held: Held | None,
) -> Fired:
    """Fire a due schedule's slots in one transaction, fenced on the lease when `held`.

    Raises StaleSchedule when the row changed since it was read, and LeaseLost when the lease
    is no longer ours; either way nothing was written.
    """
    assert schedule.next_fire_at is not None
    plan = plan_slots(
        trigger_of(schedule),
        schedule.next_fire_at,
        now,
        settings.schedule_misfire_grace_s,
        schedule.misfire,
        schedule.end_at,
    )
    if schedule.builtin:
        # One maintenance pass covers every slot it is late for: send it once, for the latest.
        trigger = trigger_of(schedule)
        latest = [schedule.next_fire_at, *_until(trigger, schedule.next_fire_at, now)][-1]
        plan = Plan([latest], 0, next_after(trigger, now, schedule.end_at))
    fired = Fired(missed=plan.missed)
    try:
        with db.session() as session:
            if held is not None:
                fence(session, held, now)
            last_job = _record(session, settings, schedule, plan.fire, "slot", now, fired)
            values: dict[str, object] = {
                "next_fire_at": plan.next_fire_at,
                "skipped_slots": schedule.skipped_slots + plan.missed,
                "last_job_id": last_job,
            }
            if plan.fire:
                values.update(last_fire_time=plan.fire[-1], last_fired_at=now)
            if not advance(session, schedule.id, schedule.version, **values):
                raise StaleSchedule(schedule.name)
    except IntegrityError:
        # A slot already has its run row: it fired before (a restart, a clock step back).
        # Move past the plan without firing anything; the key kept the slot single.
        log.warning("schedule.slot_already_fired", schedule=schedule.name)
        with db.session() as session:
            if held is not None:
                fence(session, held, now)
            if not advance(session, schedule.id, schedule.version, next_fire_at=plan.next_fire_at):
                raise StaleSchedule(schedule.name) from None
        return Fired(missed=plan.missed)
    return fired


def trigger_now(db: Database, settings: Settings, schedule: Schedule, now: datetime) -> Fired:
    """Run a schedule once now, outside its slot sequence (a "manual" run at `now`)."""
    fired = Fired()
    with db.session() as session:
        last_job = _record(session, settings, schedule, [now], "manual", now, fired)
        if not advance(
            session,
            schedule.id,
            schedule.version,
            last_job_id=last_job,
            last_fire_time=now,
            last_fired_at=now,
        ):
            raise StaleSchedule(schedule.name)
    return fired


def dispatch(db: Database, app: Celery, fired: Fired) -> None:
    """After the commit: publish the jobs' ids and send the built-ins' maintenance tasks."""
    for job in fired.jobs:
        if not publish(app, job.id, job.type, job.queue):
            with db.session() as session:
                mark_unpublished(session, job.id)
    for task, interval_s in fired.tasks:
        try:
            app.send_task(
                task,
                queue="maintenance",
                expires=interval_s * MAINTENANCE_EXPIRES_FACTOR,
                ignore_result=True,
            )
        except Exception as exc:  # broker down: the next slot sends it again
            log.warning("schedule.send_failed", task=task, error=type(exc).__name__)
