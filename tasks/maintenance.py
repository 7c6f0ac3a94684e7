"""Maintenance passes: publish jobs whose wait is over, and sweep up what was lost (I3)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from celery import Celery

from config.settings import Settings
from store.db import get_database
from store.maintenance import (
    due_job_ids,
    expired_leases,
    mark_enqueued,
    reclaim_lease,
    stale_queued,
    touch_enqueued,
)
from store.states import JobState
from store.types import utcnow
from tasks.metrics import observe_sweep
from tasks.notify import notify_finished
from tasks.publish import publish

log = structlog.get_logger(__name__)

BATCH = 500


def publish_due(settings: Settings, app: Celery) -> int:
    """Move jobs whose `next_attempt_at` has come to the broker; returns how many."""
    db = get_database(settings)
    now = utcnow()
    with db.session() as session:
        due = due_job_ids(session, now, BATCH)
        moved = set(mark_enqueued(session, [job_id for job_id, _, _ in due], now))
    # Committed first, then published: a lost publish is picked up by the sweeper.
    published = 0
    for job_id, job_type, queue in due:
        if job_id in moved and publish(app, job_id, job_type, queue):
            published += 1
    if published:
        log.info("maintenance.published_due", count=published)
    return published


def sweep(settings: Settings, app: Celery) -> dict[str, int]:
    """Re-publish queued jobs nobody claimed and reclaim running jobs whose lease expired."""
    db = get_database(settings)
    now = utcnow()
    counts = {"republished": 0, "requeued": 0, "dead": 0}
    with db.session() as session:
        expired = expired_leases(session, now, BATCH)
    for job_id in expired:
        with db.session() as session:
            state = reclaim_lease(session, job_id, now, settings.max_deliveries)
        if state is JobState.DEAD:
            counts["dead"] += 1
            notify_finished(settings, job_id, state.value)
        elif state is JobState.QUEUED:
            counts["requeued"] += 1
    before = now - timedelta(seconds=settings.republish_after_s)
    with db.session() as session:
        stale = stale_queued(session, before, BATCH)
    for job_id, job_type, queue in stale:
        with db.session() as session:
            if not touch_enqueued(session, job_id, utcnow()):
                continue
        if publish(app, job_id, job_type, queue):
            counts["republished"] += 1
    observe_sweep(counts)
    if any(counts.values()):
        log.info("maintenance.swept", **counts)
    return counts
