"""What is waiting and what is stuck, per queue, counted in the database at scrape time.

Each query reads one index range (`ix_jobs_state_queue_next`, `ix_jobs_state_type_error`, both
led by `state`), so its cost grows with the jobs in the states it counts, never with the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from store.jobs import NEVER_PUBLISHED
from store.models import Job
from store.states import WAITING_STATES, JobState

_WAITING = [s.value for s in WAITING_STATES]


@dataclass(frozen=True)
class QueueBacklog:
    """One queue's backlog: counts of jobs and how long the oldest has waited (seconds)."""

    queue: str
    queued: int = 0  # published (or to be republished), waiting for a worker
    due: int = 0  # wait over, not yet published by the due-job publisher
    scheduled: int = 0  # retry or run_at still in the future
    running: int = 0
    oldest_queued_age_s: float = 0.0
    oldest_due_age_s: float = 0.0


@dataclass(frozen=True)
class StuckCount:
    """How many jobs sit in `dead` or `needs_review` for one job type and error class."""

    state: str
    type: str
    error_class: str
    count: int


def queue_backlog(session: Session, now: datetime) -> list[QueueBacklog]:
    """Every queue with jobs that are not finished, sorted by name."""
    found: dict[str, dict[str, float]] = {}
    # An unpublished job (enqueued_at = NEVER_PUBLISHED) has waited since it was last updated.
    since = case((Job.enqueued_at == NEVER_PUBLISHED, Job.updated_at), else_=Job.enqueued_at)
    queued = (
        select(Job.queue, func.count(), func.min(since))
        .where(Job.state == JobState.QUEUED.value, Job.next_attempt_at.is_(None))
        .group_by(Job.queue)
    )
    for queue, count, oldest in session.execute(queued):
        entry = found.setdefault(queue, {})
        entry["queued"] = count
        entry["oldest_queued_age_s"] = _age(now, oldest)
    due = (
        select(Job.queue, func.count(), func.min(Job.next_attempt_at))
        .where(Job.state.in_(_WAITING), Job.next_attempt_at <= now)
        .group_by(Job.queue)
    )
    for queue, count, oldest in session.execute(due):
        entry = found.setdefault(queue, {})
        entry["due"] = count
        entry["oldest_due_age_s"] = _age(now, oldest)
    rest = (
        select(Job.queue, Job.state, func.count())
        .where(
            (Job.state == JobState.RUNNING.value)
            | (Job.state.in_(_WAITING) & (Job.next_attempt_at > now))
        )
        .group_by(Job.queue, Job.state)
    )
    for queue, state, count in session.execute(rest):
        entry = found.setdefault(queue, {})
        name = "running" if state == JobState.RUNNING.value else "scheduled"
        entry[name] = entry.get(name, 0) + count
    return [
        QueueBacklog(
            queue=queue,
            queued=int(v.get("queued", 0)),
            due=int(v.get("due", 0)),
            scheduled=int(v.get("scheduled", 0)),
            running=int(v.get("running", 0)),
            oldest_queued_age_s=v.get("oldest_queued_age_s", 0.0),
            oldest_due_age_s=v.get("oldest_due_age_s", 0.0),
        )
        for queue, v in sorted(found.items())
    ]


def stuck_counts(session: Session) -> list[StuckCount]:
    """Jobs in `dead` and `needs_review`, by state, type and error class."""
    stmt = (
        select(Job.state, Job.type, Job.error_class, func.count())
        .where(Job.state.in_([JobState.DEAD.value, JobState.NEEDS_REVIEW.value]))
        .group_by(Job.state, Job.type, Job.error_class)
        .order_by(Job.state, Job.type, Job.error_class)
    )
    return [
        StuckCount(state, job_type, error_class or "none", count)
        for state, job_type, error_class, count in session.execute(stmt)
    ]


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0
