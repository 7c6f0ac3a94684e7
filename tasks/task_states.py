"""How a job's Celery task ends, so Flower's task list tells the job's story.

A job that ends `failed`, `dead` or `needs_review` makes its task end FAILURE, with the error
class and (redacted) message; a job rescheduled for a retry or a provider poll makes it end
RETRY. Neither changes delivery: the message is acknowledged either way (acks_late acks on
failure and on retry; Celery sends no new message for a `Retry` raised this way: the job's
next attempt is published by the due-job publisher, as always).
"""

from __future__ import annotations

import uuid

from celery.exceptions import Retry

from config.settings import Settings
from store.db import get_database
from store.ops import job_error
from tasks.executor import Execution

ENDS_IN_FAILURE = frozenset({Execution.FAILED, Execution.DEAD, Execution.NEEDS_REVIEW})
RESCHEDULED = frozenset({Execution.RETRYING, Execution.AWAITING_PROVIDER})
MESSAGE_MAX = 300


class JobEnded(Exception):
    """The job behind this task ended without success (its state, error class and message)."""


def raise_for_flower(settings: Settings, job_id: uuid.UUID, execution: Execution) -> None:
    """Raise JobEnded or Retry for an execution that did not succeed; return otherwise."""
    if execution in RESCHEDULED:
        raise Retry(f"job {job_id} {execution.value}")
    if execution not in ENDS_IN_FAILURE:
        return
    with get_database(settings).session() as session:
        error = job_error(session, job_id) or {}
    message = str(error.get("message", ""))[:MESSAGE_MAX]
    raise JobEnded(f"{execution.value}: {error.get('class', 'unknown')}: {message}")
