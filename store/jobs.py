"""Repository functions for jobs and attempts, shared by the API, tasks and maintenance."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from store.db import Database
from store.models import Attempt, Job
from store.states import CLAIMABLE_STATES, JobState
from store.types import UTCDateTime, utcnow


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request."""


@dataclass(frozen=True)
class NewJob:
    """What a caller submits; the store fills in the rest."""

    tenant_id: uuid.UUID
    type: str
    queue: str
    payload: dict[str, Any]
    request_hash: str
    max_attempts: int
    idempotency_key: str | None = None
    run_at: datetime | None = None
    correlation_id: str | None = None
    retry_policy: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt did, written in the same transaction that moves the job on."""

    number: int
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    http_status: int | None = None
    latency_ms: int = 0
    error_class: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    retry_after_s: float | None = None
    request_excerpt: str | None = None
    response_excerpt: str | None = None


@dataclass
class Page:
    """One keyset page of jobs and the cursor to the next one."""

    jobs: Sequence[Job]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _job_from(new: NewJob, now: datetime) -> Job:
    scheduled = new.run_at is not None and new.run_at > now
    return Job(
        id=uuid.uuid4(),
        tenant_id=new.tenant_id,
        type=new.type,
        queue=new.queue,
        payload=new.payload,
        state=JobState.QUEUED.value,
        idempotency_key=new.idempotency_key,
        request_hash=new.request_hash,
        attempts=0,
        deliveries=0,
        max_attempts=new.max_attempts,
        next_attempt_at=new.run_at if scheduled else None,
        enqueued_at=None if scheduled else now,
        correlation_id=new.correlation_id,
        retry_policy=new.retry_policy,
        created_at=now,
        updated_at=now,
    )


def submit_job(db: Database, new: NewJob) -> tuple[Job, bool]:
    """Commit a job row; with an idempotency key, return the earlier job instead (created=False).

    Raises IdempotencyConflict when the key was used with another request body.
    """
    now = utcnow()
    job = _job_from(new, now)
    try:
        with db.session() as session:
            session.add(job)
        return job, True
    except IntegrityError:
        if new.idempotency_key is None:
            raise
    with db.session() as session:
        existing = session.scalars(
            select(Job).where(
                Job.tenant_id == new.tenant_id, Job.idempotency_key == new.idempotency_key
            )
        ).one()
    if existing.request_hash != new.request_hash:
        raise IdempotencyConflict(new.idempotency_key)
    return existing, False


def submit_jobs(db: Database, news: Sequence[NewJob]) -> list[Job]:
    """Commit many job rows in one transaction (no idempotency keys)."""
    now = utcnow()
    jobs = [_job_from(new, now) for new in news]
    with db.session() as session:
        session.add_all(jobs)
    return jobs


def get_job(session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> Job | None:
    """A job by id, optionally only if it belongs to the tenant, with its attempts."""
    stmt = select(Job).options(selectinload(Job.attempt_rows)).where(Job.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    return session.scalars(stmt).one_or_none()


def encode_cursor(job: Job) -> str:
    """An opaque cursor pointing just past this job in newest-first order."""
    raw = json.dumps([job.created_at.isoformat(), str(job.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor points past; ValueError when it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_text, id_text = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(created_text, str) or not isinstance(id_text, str):
            raise TypeError("cursor fields must be strings")
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            raise ValueError("cursor time has no time zone")
        return created.astimezone(UTC), uuid.UUID(id_text)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise ValueError("invalid cursor") from exc


def list_jobs(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    state: str | None = None,
    type: str | None = None,
    error_class: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = None,
) -> Page:
    """A tenant's jobs newest first, keyset-paginated on (created_at, id)."""
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if state is not None:
        stmt = stmt.where(Job.state == state)
    if type is not None:
        stmt = stmt.where(Job.type == type)
    if error_class is not None:
        stmt = stmt.where(Job.error_class == error_class)
    if created_after is not None:
        stmt = stmt.where(Job.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Job.created_at < created_before)
    if cursor is not None:
        created, job_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(jobs=rows[:limit], next_cursor=next_cursor)


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs from the row it just claimed."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    retry_policy: dict[str, Any] | None
    attempts: int
    deliveries: int
    max_attempts: int
    created_at: datetime


_jobs = cast(Table, Job.__table__)
_attempts = cast(Table, Attempt.__table__)
_claimable = [s.value for s in CLAIMABLE_STATES]

# The hot path's statements are built once; each call only binds values.
_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("p_id", type_=Uuid()),
        _jobs.c.state.in_(_claimable),
        _jobs.c.cancel_requested_at.is_(None),
        or_(
            _jobs.c.next_attempt_at.is_(None),
            _jobs.c.next_attempt_at <= bindparam("p_now", type_=UTCDateTime()),
        ),
    )
    .values(
        state=JobState.RUNNING.value,
        lease_owner=bindparam("p_owner"),
        lease_expires_at=bindparam("p_lease_until", type_=UTCDateTime()),
        deliveries=_jobs.c.deliveries + 1,
        next_attempt_at=None,
        started_at=bindparam("p_started", type_=UTCDateTime()),
        updated_at=bindparam("p_updated", type_=UTCDateTime()),
    )
    .returning(
        _jobs.c.id,
        _jobs.c.tenant_id,
        _jobs.c.type,
        _jobs.c.payload,
        _jobs.c.retry_policy,
        _jobs.c.attempts,
        _jobs.c.deliveries,
        _jobs.c.max_attempts,
        _jobs.c.created_at,
    )
)


def claim_job(
    session: Session, job_id: uuid.UUID, owner: str, lease: timedelta, now: datetime
) -> ClaimedJob | None:
    """Take a job for this worker with one conditional UPDATE; None when it is not claimable."""
    row = session.execute(
        _CLAIM,
        {
            "p_id": job_id,
            "p_now": now,
            "p_owner": owner,
            "p_lease_until": now + lease,
            "p_started": now,
            "p_updated": now,
        },
    ).one_or_none()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id,
        tenant_id=row.tenant_id,
        type=row.type,
        payload=row.payload,
        retry_policy=row.retry_policy,
        attempts=row.attempts,
        deliveries=row.deliveries,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
    )


def job_state(session: Session, job_id: uuid.UUID) -> str | None:
    """The current state of a job, or None when there is no such job."""
    return session.scalar(select(Job.state).where(Job.id == job_id))


_ADD_ATTEMPT = insert(_attempts)


def add_attempt(session: Session, job_id: uuid.UUID, record: AttemptRecord) -> None:
    """Write one attempt row in the caller's transaction."""
    session.execute(
        _ADD_ATTEMPT,
        {
            "job_id": job_id,
            "number": record.number,
            "worker": record.worker,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "outcome": record.outcome,
            "http_status": record.http_status,
            "latency_ms": record.latency_ms,
            "error_class": record.error_class,
            "error_message": record.error_message,
            "next_attempt_at": record.next_attempt_at,
            "retry_after_s": record.retry_after_s,
            "request_excerpt": record.request_excerpt,
            "response_excerpt": record.response_excerpt,
        },
    )


_FINISH = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("p_id", type_=Uuid()),
        _jobs.c.state == JobState.RUNNING.value,
        _jobs.c.lease_owner == bindparam("p_owner"),
    )
    .values(
        # A job about to wait for a retry whose cancel was requested meanwhile ends cancelled.
        state=case(
            (
                and_(
                    bindparam("p_retry", type_=Boolean()), _jobs.c.cancel_requested_at.is_not(None)
                ),
                JobState.CANCELLED.value,
            ),
            else_=bindparam("p_state"),
        ),
        lease_owner=None,
        lease_expires_at=None,
        attempts=_jobs.c.attempts + bindparam("p_inc", type_=Integer()),
        updated_at=bindparam("p_now", type_=UTCDateTime()),
        result=bindparam("p_result", type_=JSON(none_as_null=True)),
        error=bindparam("p_error", type_=JSON(none_as_null=True)),
        error_class=bindparam("p_error_class"),
        next_attempt_at=bindparam("p_next", type_=UTCDateTime()),
        finished_at=case(
            (bindparam("p_retry", type_=Boolean()), _jobs.c.finished_at),
            else_=bindparam("p_now", type_=UTCDateTime()),
        ),
    )
    .returning(_jobs.c.state)
)


def finish_job(
    session: Session,
    job_id: uuid.UUID,
    owner: str,
    *,
    state: JobState,
    record: AttemptRecord,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    next_attempt_at: datetime | None = None,
    count_attempt: bool = True,
) -> JobState | None:
    """Move a running job this worker owns on and write its attempt, atomically.

    The UPDATE is conditional on the lease owner, so a duplicate delivery or a worker whose
    lease was reclaimed cannot finish the job a second time (I1). A job that would wait for a
    retry but had a cancel requested meanwhile ends `cancelled` instead. Returns the state the
    job landed in, or None when this worker no longer owned it.
    """
    now = record.finished_at
    retrying = state == JobState.RETRYING
    row = session.execute(
        _FINISH,
        {
            "p_id": job_id,
            "p_owner": owner,
            "p_state": state.value,
            "p_retry": retrying,
            "p_inc": 1 if count_attempt else 0,
            "p_now": now,
            "p_result": result,
            "p_error": error,
            "p_error_class": (error or {}).get("class"),
            "p_next": next_attempt_at,
        },
    ).one_or_none()
    if row is None:
        return None
    landed = JobState(row.state)
    if landed == JobState.CANCELLED:
        cancelled = {
            "class": "cancelled",
            "code": "cancelled",
            "message": "cancel requested while running: stopped instead of retrying",
            "last_error": error,
        }
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(finished_at=now, next_attempt_at=None, error=cancelled, error_class="cancelled")
            .execution_options(synchronize_session=False)
        )
    add_attempt(session, job_id, record)
    return landed


def record_duplicate(session: Session, job_id: uuid.UUID, worker: str, now: datetime) -> bool:
    """Write a `duplicate` attempt row for a delivery that found the job not claimable (I6)."""
    attempts = session.scalar(select(Job.attempts).where(Job.id == job_id))
    if attempts is None:
        return False
    add_attempt(
        session,
        job_id,
        AttemptRecord(
            number=attempts,
            worker=worker,
            started_at=now,
            finished_at=now,
            outcome="duplicate",
            error_class="duplicate_delivery",
            error_message="delivered while not claimable; left alone",
        ),
    )
    return True


class CancelResult(StrEnum):
    """What a cancel request did."""

    CANCELLED = "cancelled"
    REQUESTED = "cancel_requested"
    TERMINAL = "terminal"
    NOT_FOUND = "not_found"


def cancel_job(
    session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime
) -> CancelResult:
    """Cancel a waiting job outright, or ask a running one to stop at its next checkpoint."""
    waiting = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.tenant_id == tenant_id,
            Job.state.in_([JobState.QUEUED.value, JobState.RETRYING.value]),
        )
        .values(
            state=JobState.CANCELLED.value,
            cancel_requested_at=now,
            next_attempt_at=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if waiting.rowcount == 1:  # type: ignore[attr-defined]
        return CancelResult.CANCELLED
    running = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.tenant_id == tenant_id, Job.state == JobState.RUNNING.value)
        .values(cancel_requested_at=func.coalesce(Job.cancel_requested_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if running.rowcount == 1:  # type: ignore[attr-defined]
        return CancelResult.REQUESTED
    exists = session.scalar(select(Job.id).where(Job.id == job_id, Job.tenant_id == tenant_id))
    return CancelResult.TERMINAL if exists is not None else CancelResult.NOT_FOUND


def cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    """Whether someone asked this job to stop."""
    return session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id)) is not None


def due_job_ids(session: Session, now: datetime, limit: int) -> list[tuple[uuid.UUID, str, str]]:
    """(id, type, queue) of queued or retrying jobs whose time has come."""
    stmt = (
        select(Job.id, Job.type, Job.queue)
        .where(
            Job.state.in_([JobState.QUEUED.value, JobState.RETRYING.value]),
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
                Job.state.in_([JobState.QUEUED.value, JobState.RETRYING.value]),
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
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < enqueued_before),
        )
        .order_by(Job.enqueued_at)
        .limit(limit)
    )
    return [(row.id, row.type, row.queue) for row in session.execute(stmt)]


def touch_enqueued(session: Session, job_id: uuid.UUID, now: datetime) -> bool:
    """Stamp a queued job as published now; False when it is no longer queued."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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
    values: dict[str, Any] = {
        "state": new_state.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": Job.attempts + 1,
        "updated_at": now,
    }
    if new_state == JobState.CANCELLED:
        values["finished_at"] = now
        values["error"] = {
            "class": "cancelled",
            "code": "cancelled",
            "message": "cancel requested; the worker running it was lost",
        }
    elif dead:
        values["finished_at"] = now
        values["error"] = {
            "class": "worker_lost",
            "code": "worker_lost",
            "message": f"the worker running it was lost {job.deliveries} times",
        }
    else:
        values["enqueued_at"] = None  # the same sweep publishes it
    if "error" in values:
        values["error_class"] = values["error"]["class"]
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
            outcome="lost",
            error_class="worker_lost",
            error_message="lease expired before the attempt finished",
        ),
    )
    return new_state


def mark_unpublished(session: Session, job_id: uuid.UUID) -> None:
    """Flag a queued job whose publish failed, so the next sweep publishes it."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
        .values(enqueued_at=None)
        .execution_options(synchronize_session=False)
    )


def had_unknown_outcome(session: Session, job_id: uuid.UUID) -> bool:
    """Whether any attempt of the job ended without knowing if it took effect."""
    return (
        session.scalar(
            select(Attempt.id)
            .where(Attempt.job_id == job_id, Attempt.error_class == "unknown_outcome")
            .limit(1)
        )
        is not None
    )
