"""What reconciliation reads and the one change it may make: settle a job under review."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.errors import JobError
from store.lifecycle import AttemptRecord, add_attempt
from store.models import Job, LedgerEntry
from store.states import AttemptOutcome, JobState


def jobs_under_review(session: Session, limit: int) -> list[Job]:
    """Payment jobs whose outcome nobody knows yet."""
    stmt = (
        select(Job)
        .where(Job.state == JobState.NEEDS_REVIEW.value, Job.type.like("payments.%"))
        .order_by(Job.updated_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def recent_ledger(session: Session, since: datetime, limit: int) -> list[LedgerEntry]:
    """Charges and captures recorded since `since`, to check against the provider."""
    stmt = (
        select(LedgerEntry)
        .where(LedgerEntry.created_at >= since, LedgerEntry.operation.in_(("charge", "capture")))
        .order_by(LedgerEntry.created_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def settle(
    session: Session,
    job_id: uuid.UUID,
    state: JobState,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: JobError | None = None,
    note: str,
) -> bool:
    """Move a job from needs_review to `state` (once: a second run finds nothing to do)."""
    attempts = session.scalar(select(Job.attempts).where(Job.id == job_id)) or 0
    moved = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.NEEDS_REVIEW.value)
        .values(
            state=state.value,
            result=result,
            error=error.to_json() if error is not None else None,
            error_class=error.error_class.value if error is not None else None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    add_attempt(
        session,
        job_id,
        AttemptRecord(
            number=attempts,
            worker="reconciliation",
            started_at=now,
            finished_at=now,
            outcome=AttemptOutcome.RECONCILED,
            error_message=note,
        ),
    )
    return True
