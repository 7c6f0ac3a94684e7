"""Deleting old terminal jobs in bounded batches, never a job the payment ledger names or a
refund under review whose hold still reserves its amount."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from store.models import Attempt, Job, LedgerEntry, PaymentHold, PaymentKey, ScheduleRun
from store.states import HOLDING_STATES, TERMINAL_STATES


def purge_terminal_batch(session: Session, finished_before: datetime, limit: int) -> int:
    """Delete up to `limit` jobs that ended before `finished_before`, with their attempts and
    payment keys; returns how many. Jobs with payment ledger rows stay (the ledger is the
    record of money moved and keeps its job), and so do refunds whose hold still counts (under
    review: money may have moved; deleting the job would free its reservation); schedule runs
    keep their slot, losing the link.
    """
    ids = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.state.in_([state.value for state in TERMINAL_STATES]),
                Job.finished_at < finished_before,
                ~exists().where(LedgerEntry.job_id == Job.id),
                ~(
                    Job.state.in_([state.value for state in HOLDING_STATES])
                    & exists().where(
                        PaymentHold.job_id == Job.id, PaymentHold.released_at.is_(None)
                    )
                ),
            )
            .limit(limit)
        )
    )
    if not ids:
        return 0
    session.execute(delete(Attempt).where(Attempt.job_id.in_(ids)))
    session.execute(delete(PaymentKey).where(PaymentKey.job_id.in_(ids)))
    session.execute(delete(PaymentHold).where(PaymentHold.job_id.in_(ids)))
    session.execute(update(ScheduleRun).where(ScheduleRun.job_id.in_(ids)).values(job_id=None))
    session.execute(delete(Job).where(Job.id.in_(ids)))
    return len(ids)
