"""Maintenance queries: due jobs, stale queued jobs, expired leases (the sweeper's work)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from store.errors import JobError
from store.jobs import NEVER_PUBLISHED
from store.lifecycle import AttemptRecord, add_attempt
from store.models import Job
from store.states import WAITING_STATES, AttemptOutcome, ErrorClass, JobState


def due_job_ids(session: Session, now: datetime, limit: int) -> list[tuple[uuid.UUID, str, str]]:
    """(id, type, queue) of queued or retrying jobs whose time has come."""
    stmt = (
        select(Job.id, Job.type, Job.queue)
        .where(
            Job.state.in_([s.value for s in WAITING_STATES]),
            Job.next_attempt_at.is_not(None),
            Job.next_attempt_at <= now,
        )
        .order_by(Job.next_attempt_at)
        .limit(limit)
    )
    return [(row.id, row.type, row.queue) for row in session.execute(stmt)]


def mark_enqueued(session: Session, job_ids: Sequence[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """Move due jobs to `queued` with no wait left; returns the ids this call moved."""
    moved: list[uuid.UUID] = []
    for job_id in job_ids:
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.state.in_([s.value for s in WAITING_STATES]),
                Job.next_attempt_at.is_not(None),
                Job.next_attempt_at <= now,
            )
            .values(
                state=JobState.QUEUED.value, next_attempt_at=None, enqueued_at=now, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            moved.append(job_id)
    return moved


def stale_queued(
    session: Session, enqueued_before: datetime, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, type, queue) of queued jobs published long ago that nobody has claimed."""
    stmt = (
        select(Job.id, Job.type, Job.queue)
        .where(
            Job.state == JobState.QUEUED.value,
            Job.next_attempt_at.is_(None),
            Job.enqueued_at < enqueued_before,
        )
        .order_by(Job.enqueued_at)
        .limit(limit)
    )
    return [(row.id, row.type, row.queue) for row in session.execute(stmt)]


def claim_stale(
    session: Session, job_ids: Sequence[uuid.UUID], enqueued_before: datetime, now: datetime
) -> list[uuid.UUID]:
    """Stamp stale queued jobs as published now; returns the ids this call took.

    Conditional on the job still being stale: of two sweeps that read the same stale rows, only
    one takes each, so a job is re-published once per stale period, not once per sweep.
    """
    if not job_ids:
        return []
    stmt = (
        update(Job)
        .where(
            Job.id.in_(list(job_ids)),
            Job.state == JobState.QUEUED.value,
            Job.next_attempt_at.is_(None),
            Job.enqueued_at < enqueued_before,
        )
        .values(enqueued_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def mark_unpublished_many(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Flag queued jobs whose publish failed (`enqueued_at` of 1970): the next sweep takes them."""
    if not job_ids:
        return
    session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.state == JobState.QUEUED.value)
        .values(enqueued_at=NEVER_PUBLISHED)
        .execution_options(synchronize_session=False)
    )


def expired_leases(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Ids of running jobs whose worker stopped renewing its lease."""
    stmt = (
        select(Job.id)
        .where(Job.state == JobState.RUNNING.value, Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def reclaim_lease(
    session: Session, job_id: uuid.UUID, now: datetime, max_deliveries: int
) -> JobState | None:
    """Take back a job whose lease expired: re-queue it, or `dead` once it has killed too many.

    Records a `lost` attempt row so the crash stays visible (I6). None if it moved meanwhile.
    """
    job = session.scalars(
        select(Job).where(
            Job.id == job_id, Job.state == JobState.RUNNING.value, Job.lease_expires_at < now
        )
    ).one_or_none()
    if job is None:
        return None
    dead = job.deliveries >= max_deliveries
    new_state = JobState.DEAD if dead else JobState.QUEUED
    if job.cancel_requested_at is not None:
        new_state, dead = JobState.CANCELLED, True
    error: JobError | None = None
    values: dict[str, Any] = {
        "state": new_state.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": Job.attempts + 1,
        "updated_at": now,
    }
    if new_state == JobState.CANCELLED:
        values["finished_at"] = now
        error = JobError(
            ErrorClass.CANCELLED, "cancelled", "cancel requested; the worker running it was lost"
        )
    elif dead:
        values["finished_at"] = now
        error = JobError(
            ErrorClass.WORKER_LOST,
            "worker_lost",
            f"the worker running it was lost {job.deliveries} times",
        )
    else:
        values["enqueued_at"] = NEVER_PUBLISHED  # the same sweep publishes it
    if error is not None:
        values["error"] = error.to_json()
        values["error_class"] = error.error_class.value
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.state == JobState.RUNNING.value,
            Job.lease_owner == job.lease_owner,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    add_attempt(
        session,
        job_id,
        AttemptRecord(
            number=job.attempts + 1,
            worker=job.lease_owner or "",
            started_at=job.started_at or now,
            finished_at=now,
            outcome=AttemptOutcome.LOST,
            error_class=ErrorClass.WORKER_LOST,
            error_message="lease expired before the attempt finished",
        ),
    )
    return new_state
