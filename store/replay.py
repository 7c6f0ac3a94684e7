"""Dead letters: find failed jobs by filter, send them round again, and audit who did it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import AuditEvent, Job
from store.payment_claims import reserve_again
from store.states import JobState

REPLAYABLE_STATES = frozenset({JobState.DEAD, JobState.FAILED, JobState.NEEDS_REVIEW})


@dataclass(frozen=True)
class ReplayFilter:
    """Which of a tenant's finished jobs to replay."""

    states: frozenset[JobState] = frozenset({JobState.DEAD})
    type: str | None = None
    error_class: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def matching_jobs(
    session: Session, tenant_id: uuid.UUID, flt: ReplayFilter, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, type, queue) of the tenant's jobs matching the filter, oldest first."""
    stmt = select(Job.id, Job.type, Job.queue).where(
        Job.tenant_id == tenant_id, Job.state.in_([s.value for s in flt.states])
    )
    if flt.type is not None:
        stmt = stmt.where(Job.type == flt.type)
    if flt.error_class is not None:
        stmt = stmt.where(Job.error_class == flt.error_class)
    if flt.created_after is not None:
        stmt = stmt.where(Job.created_at >= flt.created_after)
    if flt.created_before is not None:
        stmt = stmt.where(Job.created_at < flt.created_before)
    stmt = stmt.order_by(Job.created_at, Job.id).limit(limit)
    return [(row.id, row.type, row.queue) for row in session.execute(stmt)]


def replay_job(
    session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID, extra_attempts: int, now: datetime
) -> bool:
    """Queue a finished job again with `extra_attempts` more tries; False if not replayable.

    Its id, and so every provider idempotency key derived from it, stays the same: a replay
    of a charge that did go through is answered from the provider's saved response. A refund
    reserves its amount again in this transaction, or the call raises PaymentRefused
    (`refund_exceeds_captured`) and changes nothing.
    """
    found = session.execute(
        select(Job.retry_policy, Job.state).where(Job.id == job_id, Job.tenant_id == tenant_id)
    ).one_or_none()
    if found is None or found.state not in {s.value for s in REPLAYABLE_STATES}:
        return False
    reserve_again(session, job_id)
    policy = found.retry_policy
    # The retry age restarts with the replay; the policy itself stays as submitted.
    extra_attempts = int((policy or {}).get("max_attempts", extra_attempts))
    policy = {**(policy or {}), "age_from": now.isoformat()}
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.tenant_id == tenant_id,
            Job.state.in_([s.value for s in REPLAYABLE_STATES]),
        )
        .values(
            retry_policy=policy,
            state=JobState.QUEUED.value,
            max_attempts=Job.attempts + extra_attempts,
            deliveries=0,
            replays=Job.replays + 1,
            result=None,
            error=None,
            error_class=None,
            next_attempt_at=None,
            finished_at=None,
            enqueued_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def audit(
    session: Session,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    details: dict[str, Any],
    job_id: uuid.UUID | None = None,
) -> None:
    """Record an operator action."""
    session.add(
        AuditEvent(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            job_id=job_id,
            details=details,
        )
    )


def audit_events(session: Session, tenant_id: uuid.UUID, limit: int) -> list[AuditEvent]:
    """The tenant's latest audit events, newest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.tenant_id == tenant_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
