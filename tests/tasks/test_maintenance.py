"""Maintenance passes on a real DB and Redis: due jobs published, orphans swept, poison capped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.lifecycle import claim_job
from store.models import Job
from store.states import JobState
from store.types import utcnow
from tasks.maintenance import publish_due, sweep
from tasks.publish import producer_app
from tests.support.broker import purge, queued_job_ids
from tests.tasks.factories import RATES, load, make_job

QUEUES = ("data", "payments")


@pytest.fixture
def clean_queues(settings: Settings) -> Iterator[Settings]:
    """The test's settings with its queues empty before and after."""
    purge(settings, *QUEUES)
    yield settings
    purge(settings, *QUEUES)


def _set(settings: Settings, job_id: uuid.UUID, **values: object) -> None:
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _claim(settings: Settings, job_id: uuid.UUID, lease_s: float) -> None:
    with get_database(settings).session() as session:
        assert claim_job(session, job_id, "w-dead", timedelta(seconds=lease_s), utcnow())


def test_due_retry_is_moved_to_queued_and_published_once(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job waiting for a retry that is now due, and one still waiting
    s = clean_queues
    due = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    later = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _set(s, due, state="retrying", next_attempt_at=utcnow() - timedelta(seconds=1))
    _set(s, later, state="retrying", next_attempt_at=utcnow() + timedelta(hours=1))
    # When the due-job publisher runs twice
    first = publish_due(s, producer_app(s))
    second = publish_due(s, producer_app(s))
    # Then only the due job was published, once, and it is queued with no wait left
    assert (first, second) == (1, 0)
    assert queued_job_ids(s, "data") == [str(due)]
    assert load(s, due).state == JobState.QUEUED and load(s, due).next_attempt_at is None
    assert load(s, later).state == JobState.RETRYING


def test_sweeper_republishes_a_queued_job_nobody_claimed(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a queued job whose publish was lost long ago
    s = clean_queues.model_copy(update={"republish_after_s": 5})
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _set(s, job_id, enqueued_at=utcnow() - timedelta(seconds=60))
    # When the sweeper runs
    counts = sweep(s, producer_app(s))
    # Then the job id is in the broker again
    assert counts["republished"] == 1
    assert queued_job_ids(s, "data") == [str(job_id)]


def test_sweeper_reclaims_an_expired_lease_and_records_the_lost_attempt(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job claimed by a worker that died (its lease has expired)
    s = clean_queues
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _claim(s, job_id, lease_s=-1)
    # When the sweeper runs
    counts = sweep(s, producer_app(s))
    # Then the job is queued again and published, with a `lost` attempt row
    assert counts["requeued"] == 1
    job = load(s, job_id)
    assert job.state == JobState.QUEUED and job.lease_owner is None
    assert [(a.outcome, a.error_class) for a in job.attempt_rows] == [("lost", "worker_lost")]
    assert queued_job_ids(s, "data") == [str(job_id)]


def test_job_that_keeps_killing_its_worker_is_dead_after_max_deliveries(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job whose worker has been lost on each of its 2 allowed deliveries
    s = clean_queues.model_copy(update={"max_deliveries": 2})
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    for _ in range(2):
        _claim(s, job_id, lease_s=-1)
        sweep(s, producer_app(s))
    # Then it is dead, says why, and has two lost attempts
    job = load(s, job_id)
    assert job.state == JobState.DEAD
    assert job.error is not None and job.error["code"] == "worker_lost"
    assert [a.outcome for a in job.attempt_rows] == ["lost", "lost"]


def test_a_live_lease_is_left_alone(clean_queues: Settings, tenant_key: IssuedKey) -> None:
    # Given a job claimed by a live worker
    s = clean_queues
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _claim(s, job_id, lease_s=60)
    # When the sweeper runs
    counts = sweep(s, producer_app(s))
    # Then the job stays running with its owner
    assert counts == {"republished": 0, "requeued": 0, "dead": 0}
    assert load(s, job_id).state == JobState.RUNNING
