"""A world for console tests: a sandbox outage that killed a tenant's charges."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from config.settings import Settings
from store.db import get_database
from store.lifecycle import AttemptRecord, add_attempt
from store.models import Job
from store.states import AttemptOutcome, ErrorClass, JobState
from store.types import utcnow
from tests.tasks.factories import CHARGE, make_job

CHARGE_TYPE = "payments.sandbox.charge"
OUTAGE_MESSAGE = "503 Service Unavailable from the provider"
# What a careless provider echoes back: a card number the console must never show.
LEAKY_EXCERPT = '{"error": "card 4242424242424242 declined upstream", "status": 503}'


def outage_killed_charges(settings: Settings, tenant_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    """`count` charges that met 503s on every attempt and ended dead (transient)."""
    ids = [make_job(settings, tenant_id, CHARGE_TYPE, CHARGE, max_attempts=3) for _ in range(count)]
    start = utcnow() - timedelta(minutes=30)
    with get_database(settings).session() as session:
        for job_id in ids:
            for number in (1, 2, 3):
                at = start + timedelta(seconds=number)
                add_attempt(
                    session,
                    job_id,
                    AttemptRecord(
                        number=number,
                        worker="test-worker",
                        started_at=at,
                        finished_at=at + timedelta(milliseconds=120),
                        outcome=AttemptOutcome.RETRY,
                        http_status=503,
                        latency_ms=120,
                        error_class=ErrorClass.TRANSIENT,
                        error_message=OUTAGE_MESSAGE,
                        response_excerpt=LEAKY_EXCERPT,
                    ),
                )
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(
                state=JobState.DEAD.value,
                attempts=3,
                error_class=ErrorClass.TRANSIENT.value,
                error={
                    "class": "transient",
                    "code": "http_503",
                    "message": OUTAGE_MESSAGE,
                    "http_status": 503,
                    "reason": "retries_exhausted",
                },
                finished_at=start + timedelta(seconds=4),
                enqueued_at=None,
            )
        )
    return ids
