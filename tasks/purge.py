"""The purge pass: drop terminal jobs older than the retention, a bounded batch at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from celery import Task, shared_task

from config.settings import Settings, get_settings
from store.db import get_database
from store.purge import purge_terminal_batch
from store.types import utcnow

log = structlog.get_logger(__name__)

PURGE_TASK = "maintenance.jobs.purge"
MAX_BATCHES = 20  # per pass: a large backlog drains over several passes, never in one long lock


def purge(settings: Settings, now: datetime | None = None, max_batches: int = MAX_BATCHES) -> int:
    """Delete terminal jobs that finished more than `purge_retention_s` ago; returns how many.

    Each batch of `purge_batch` jobs is its own short transaction.
    """
    before = (now or utcnow()) - timedelta(seconds=settings.purge_retention_s)
    db = get_database(settings)
    total = 0
    for _ in range(max_batches):
        with db.session() as session:
            deleted = purge_terminal_batch(session, before, settings.purge_batch)
        total += deleted
        if deleted < settings.purge_batch:
            break
    if total:
        log.info("maintenance.purged", count=total)
    return total


@shared_task(name=PURGE_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def purge_task(self: Task) -> int:
    """Beat-driven: purge old terminal jobs."""
    return purge(get_settings())
