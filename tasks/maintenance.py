"""Maintenance passes: publish jobs whose wait is over, and sweep up what was lost (I3).

Each pass runs alone across all workers (`tasks.exclusive`). A publish that fails leaves its
jobs flagged unpublished (`enqueued_at` of 1970), so the next sweep publishes them again
instead of waiting `CONVEYOR_REPUBLISH_AFTER_S`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import structlog
from celery import Celery

from config.settings import Settings
from store.db import get_database
from store.maintenance import (
    claim_stale,
    due_job_ids,
    expired_leases,
    mark_enqueued,
    mark_unpublished_many,
    reclaim_lease,
    stale_queued,
)
from store.provider_events import unprocessed_events
from store.states import JobState
from store.types import utcnow
from tasks.exclusive import exclusive
from tasks.metrics import observe_sweep
from tasks.notify import notify_finished
from tasks.provider_events import Applied, apply_event
from tasks.publish import publish_many
from tasks.webhooks import Outbox

log = structlog.get_logger(__name__)

BATCH = 500
# Provider events applied per sweep; applying one may ask the provider about a payment.
EVENT_BATCH = 50
# The due-job pass's lock lasts this many polls, at least DUE_LOCK_MIN_S seconds.
DUE_LOCK_POLLS = 5
DUE_LOCK_MIN_S = 5.0
# A sweep's lock lasts two intervals, at least SWEEP_LOCK_MIN_S seconds; a sweep outliving it is
# still safe (every row it moves is moved by a conditional UPDATE).
SWEEP_LOCK_INTERVALS = 2
SWEEP_LOCK_MIN_S = 5.0


def _publish_or_flag(
    settings: Settings, app: Celery, jobs: Sequence[tuple[uuid.UUID, str, str]]
) -> int:
    """Publish jobs already stamped queued; flag the ones that may not have gone. Returns sent."""
    failed = publish_many(app, jobs)
    if failed:
        with get_database(settings).session() as session:
            mark_unpublished_many(session, failed)
    return len(jobs) - len(failed)


def publish_due(settings: Settings, app: Celery) -> int:
    """Move jobs whose `next_attempt_at` has come to the broker; returns how many."""
    # Held briefly: a holder that died must not stop due jobs for long.
    ttl_s = max(DUE_LOCK_MIN_S, DUE_LOCK_POLLS * settings.due_poll_s)
    with exclusive(settings, "publish_due", ttl_s) as held:
        if not held:
            return 0
        db = get_database(settings)
        now = utcnow()
        with db.session() as session:
            due = due_job_ids(session, now, BATCH)
            moved = set(mark_enqueued(session, [job_id for job_id, _, _ in due], now))
        # Committed first, then published: a failed publish flags the rows for the sweeper.
        published = _publish_or_flag(settings, app, [job for job in due if job[0] in moved])
    if published:
        log.info("maintenance.published_due", count=published)
    return published


def sweep(settings: Settings, app: Celery) -> dict[str, int]:
    """Reclaim expired leases, re-publish queued jobs nobody claimed, apply stranded events."""
    counts = {"republished": 0, "requeued": 0, "dead": 0, "events": 0}
    ttl_s = max(SWEEP_LOCK_MIN_S, SWEEP_LOCK_INTERVALS * settings.sweep_interval_s)
    with exclusive(settings, "sweep", ttl_s) as held:
        if not held:
            return counts
        _reclaim(settings, counts)
        _republish(settings, app, counts)
        counts["events"] = apply_stranded_events(settings)
    observe_sweep(counts)
    if any(counts.values()):
        log.info("maintenance.swept", **counts)
    return counts


def _reclaim(settings: Settings, counts: dict[str, int]) -> None:
    db = get_database(settings)
    now = utcnow()
    with db.session() as session:
        expired = expired_leases(session, now, BATCH)
    for job_id in expired:
        outbox = Outbox(settings)
        with db.session() as session:
            state = reclaim_lease(session, job_id, now, settings.max_deliveries)
            if state is JobState.DEAD:
                outbox.collect_end(session, job_id)
        outbox.publish()
        if state is JobState.DEAD:
            counts["dead"] += 1
            notify_finished(settings, job_id, state.value)
        elif state is JobState.QUEUED:
            counts["requeued"] += 1


def _republish(settings: Settings, app: Celery, counts: dict[str, int]) -> None:
    db = get_database(settings)
    now = utcnow()
    before = now - timedelta(seconds=settings.republish_after_s)
    with db.session() as session:
        stale = stale_queued(session, before, BATCH)
        taken = set(claim_stale(session, [job_id for job_id, _, _ in stale], before, now))
    counts["republished"] = _publish_or_flag(
        settings, app, [job for job in stale if job[0] in taken]
    )


def apply_stranded_events(settings: Settings) -> int:
    """Apply provider events stored but never applied (their publish was lost); returns how many.

    An event gets `CONVEYOR_REPUBLISH_AFTER_S` for its own task to apply it first; applying is
    conditional on the row still being unprocessed, so each event is applied once.
    """
    before = utcnow() - timedelta(seconds=settings.republish_after_s)
    with get_database(settings).session() as session:
        stranded = unprocessed_events(session, before, EVENT_BATCH)
    applied = 0
    for event_id in stranded:
        try:
            outcome = apply_event(settings, event_id)
        except Exception as exc:  # one bad event must not stop the sweep; the next one retries
            log.warning(
                "provider_event.apply_failed",
                provider_event_id=str(event_id),
                error=type(exc).__name__,
            )
            continue
        if outcome in {Applied.LINKED, Applied.UNLINKED}:
            applied += 1
    return applied
