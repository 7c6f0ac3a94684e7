"""How many of a tenant's jobs are not finished yet, counted up to a bound."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Job
from store.states import TERMINAL_STATES, JobState

OPEN_STATES = tuple(s.value for s in JobState if s not in TERMINAL_STATES)


def count_open_jobs(session: Session, tenant_id: uuid.UUID, at_most: int) -> int:
    """The tenant's non-terminal jobs, counting no further than `at_most` (index-only, bounded)."""
    open_ids = (
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.state.in_(OPEN_STATES))
        .limit(at_most)
        .subquery()
    )
    return int(session.scalar(select(func.count()).select_from(open_ids)) or 0)
