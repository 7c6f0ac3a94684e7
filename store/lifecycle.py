"""A job's run: claim with a lease, finish once with its attempt row, cancel, duplicates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Integer,
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
from sqlalchemy.orm import Session

from store.errors import JobError
from store.models import ATTEMPTS, JOBS, Attempt, Job
from store.states import CLAIMABLE_STATES, AttemptOutcome, ErrorClass, JobState
from store.types import UTCDateTime


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt did, written in the same transaction that moves the job on."""

    number: int
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: AttemptOutcome
    http_status: int | None = None
    latency_ms: int = 0
    error_class: ErrorClass | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None
    retry_after_s: float | None = None
    request_excerpt: str | None = None
    response_excerpt: str | None = None


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
    result: dict[str, Any] | None = None  # a pending result being settled, else None
    correlation_id: str | None = None  # the submitting request's, for every attempt log line
    callback_url: str | None = None  # the submitter's URL for the job's terminal event


# The hot path runs its prebuilt Core statements on a bare connection (Database.connection);
# other callers pass their ORM session. Both execute the same statements.
Runner = Connection | Session


_claimable = [s.value for s in CLAIMABLE_STATES]

# The hot path's statements are built once; each call only binds values.

_CLAIM = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("p_id", type_=Uuid()),
        JOBS.c.state.in_(_claimable),
        JOBS.c.cancel_requested_at.is_(None),
        or_(
            JOBS.c.next_attempt_at.is_(None),
            JOBS.c.next_attempt_at <= bindparam("p_now", type_=UTCDateTime()),
        ),
    )
    .values(
        state=JobState.RUNNING.value,
        lease_owner=bindparam("p_owner"),
        lease_expires_at=bindparam("p_lease_until", type_=UTCDateTime()),
        deliveries=JOBS.c.deliveries + 1,
        next_attempt_at=None,
        started_at=bindparam("p_started", type_=UTCDateTime()),
        updated_at=bindparam("p_updated", type_=UTCDateTime()),
    )
    .returning(
        JOBS.c.id,
        JOBS.c.tenant_id,
        JOBS.c.type,
        JOBS.c.payload,
        JOBS.c.retry_policy,
        JOBS.c.attempts,
        JOBS.c.deliveries,
        JOBS.c.max_attempts,
        JOBS.c.created_at,
        JOBS.c.result,
        JOBS.c.correlation_id,
        JOBS.c.callback_url,
    )
)


def claim_job(
    session: Runner, job_id: uuid.UUID, owner: str, lease: timedelta, now: datetime
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
        result=row.result,
        correlation_id=row.correlation_id,
        callback_url=row.callback_url,
    )


_ADD_ATTEMPT = insert(ATTEMPTS)


def add_attempt(session: Runner, job_id: uuid.UUID, record: AttemptRecord) -> None:
    """Write one attempt row in the caller's transaction."""
    session.execute(
        _ADD_ATTEMPT,
        {
            "job_id": job_id,
            "number": record.number,
            "worker": record.worker,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "outcome": record.outcome.value,
            "http_status": record.http_status,
            "latency_ms": record.latency_ms,
            "error_class": record.error_class.value if record.error_class else None,
            "error_message": record.error_message,
            "next_attempt_at": record.next_attempt_at,
            "retry_after_s": record.retry_after_s,
            "request_excerpt": record.request_excerpt,
            "response_excerpt": record.response_excerpt,
        },
    )


_FINISH = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("p_id", type_=Uuid()),
        JOBS.c.state == JobState.RUNNING.value,
        JOBS.c.lease_owner == bindparam("p_owner"),
    )
    .values(
        # A job about to wait for a retry whose cancel was requested meanwhile ends cancelled.
        state=case(
            (
                and_(
                    bindparam("p_retry", type_=Boolean()), JOBS.c.cancel_requested_at.is_not(None)
                ),
                JobState.CANCELLED.value,
            ),
            else_=bindparam("p_state"),
        ),
        lease_owner=None,
        lease_expires_at=None,
        attempts=JOBS.c.attempts + bindparam("p_inc", type_=Integer()),
        updated_at=bindparam("p_now", type_=UTCDateTime()),
        result=bindparam("p_result", type_=JSON(none_as_null=True)),
        error=bindparam("p_error", type_=JSON(none_as_null=True)),
        error_class=bindparam("p_error_class"),
        next_attempt_at=bindparam("p_next", type_=UTCDateTime()),
        finished_at=case(
            (bindparam("p_retry", type_=Boolean()), JOBS.c.finished_at),
            else_=bindparam("p_now", type_=UTCDateTime()),
        ),
    )
    .returning(JOBS.c.state, JOBS.c.notify_on_end)
)


class Landed(NamedTuple):
    """Where a finished attempt left its job, and whether a client waits to hear of it."""

    state: JobState
    notify: bool


def finish_job(
    session: Runner,
    job_id: uuid.UUID,
    owner: str,
    *,
    state: JobState,
    record: AttemptRecord,
    result: dict[str, Any] | None = None,
    error: JobError | None = None,
    next_attempt_at: datetime | None = None,
    count_attempt: bool = True,
) -> Landed | None:
    """Move a running job this worker owns on and write its attempt, atomically.

    The UPDATE is conditional on the lease owner, so a duplicate delivery or a worker whose
    lease was reclaimed cannot finish the job a second time (I1). A job that would wait for a
    retry but had a cancel requested meanwhile ends `cancelled` instead. Returns the state the
    job landed in and whether a client waits to hear of it (read in the same UPDATE), or None
    when this worker no longer owned it.
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
            "p_error": error.to_json() if error is not None else None,
            "p_error_class": error.error_class.value if error is not None else None,
            "p_next": next_attempt_at,
        },
    ).one_or_none()
    if row is None:
        return None
    landed = JobState(row.state)
    if landed == JobState.CANCELLED:
        cancelled = JobError(
            ErrorClass.CANCELLED,
            "cancelled",
            "cancel requested while running: stopped instead of retrying",
            details={"last_error": error.to_json() if error is not None else None},
        )
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                finished_at=now,
                next_attempt_at=None,
                error=cancelled.to_json(),
                error_class=ErrorClass.CANCELLED.value,
            )
            .execution_options(synchronize_session=False)
        )
    add_attempt(session, job_id, record)
    return Landed(landed, bool(row.notify_on_end))


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
            outcome=AttemptOutcome.DUPLICATE,
            error_class=ErrorClass.DUPLICATE_DELIVERY,
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


def had_unknown_outcome(session: Session, job_id: uuid.UUID) -> bool:
    """Whether any attempt of the job ended without knowing if it took effect."""
    return (
        session.scalar(
            select(Attempt.id)
            .where(
                Attempt.job_id == job_id,
                Attempt.error_class == ErrorClass.UNKNOWN_OUTCOME.value,
            )
            .limit(1)
        )
        is not None
    )
