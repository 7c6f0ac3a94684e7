"""Long polls: hold an answer until a job ends, woken by the worker's notice, never by polling."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response, status

from api.schemas import JobOut
from config.settings import Settings
from store.db import Database
from store.jobs import ask_to_notify, get_job
from store.models import Job
from store.states import TERMINAL_STATES
from tasks.notify import subscribed

WAIT_MAX_S = 30.0
WaitQuery = Annotated[
    float,
    Query(
        ge=0,
        le=WAIT_MAX_S,
        description="seconds to hold the answer until the job ends (woken by the worker)",
    ),
]


def load_job(db: Database, job_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> Job | None:
    """A job with its attempts, optionally only if it belongs to the tenant."""
    with db.session() as session:
        return get_job(session, job_id, tenant_id)


def wait_for_end(settings: Settings, db: Database, job_id: uuid.UUID, wait: float) -> None:
    """Return once the job ends (announced by whoever ends it) or after `wait` seconds.

    Subscribed first, then the ender asked to announce in the statement that reads the state:
    an end before that statement is seen in the state, an end after it is announced.
    """
    with subscribed(settings, job_id) as subscription:
        if subscription is None:
            return  # no notices to be had: answer with what the DB says now
        state = ask_to_notify(db, job_id)
        if state is not None and state not in TERMINAL_STATES:
            subscription.wait(wait)


def answer_after_wait(db: Database, job: Job, response: Response, unfinished_status: int) -> JobOut:
    """The job after a wait: 200 when it ended, `unfinished_status` while it still runs."""
    current = load_job(db, job.id) or job
    finished = current.state in TERMINAL_STATES
    response.status_code = status.HTTP_200_OK if finished else unfinished_status
    return JobOut.of(current, with_attempts=True)
