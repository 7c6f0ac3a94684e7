"""Maintenance passes on a real DB and Redis: due jobs published, orphans swept, poison capped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy import update

from config.settings import Settings
from store.db import get_database
from store.jobs import NEVER_PUBLISHED
from store.keys import IssuedKey
from store.lifecycle import claim_job
from store.maintenance import claim_stale, stale_queued
from store.models import Job
from store.states import JobState
from store.types import utcnow
from tasks.entry import SWEEP_TASK
from tasks.exclusive import exclusive
from tasks.maintenance import publish_due, sweep
from tasks.publish import producer_app
from tasks.schedules import Fired, dispatch
from tests.support.broker import purge, queued_job_ids, queued_messages
from tests.support.procs import free_port
from tests.support.proxy import Proxy
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
    assert counts == {"republished": 0, "requeued": 0, "dead": 0, "events": 0}
    assert load(s, job_id).state == JobState.RUNNING


def test_a_due_job_whose_publish_fails_stays_flagged_and_the_next_sweep_publishes_it(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a due retry, and a broker that refuses the publish (nothing listens on its port)
    s = clean_queues
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _set(s, job_id, state="retrying", next_attempt_at=utcnow() - timedelta(seconds=1))
    dead_broker = s.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    # When the due-job publisher runs and its publish fails
    assert publish_due(s, producer_app(dead_broker)) == 0
    # Then the job is queued but flagged unpublished, not stamped as published now
    assert load(s, job_id).enqueued_at == NEVER_PUBLISHED
    # And the very next sweep publishes it (no CONVEYOR_REPUBLISH_AFTER_S wait)
    assert sweep(s, producer_app(s))["republished"] == 1
    assert queued_job_ids(s, "data") == [str(job_id)]


def test_a_stale_job_whose_republish_fails_stays_flagged_for_the_next_sweep(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a queued job nobody claimed for a long time, and a broker refusing publishes
    s = clean_queues.model_copy(update={"republish_after_s": 5})
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _set(s, job_id, enqueued_at=utcnow() - timedelta(seconds=60))
    dead_broker = s.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    # When a sweep tries to re-publish it and fails
    assert sweep(s, producer_app(dead_broker))["republished"] == 0
    # Then it stays flagged, and the next sweep with the broker back publishes it
    assert load(s, job_id).enqueued_at == NEVER_PUBLISHED
    assert sweep(s, producer_app(s))["republished"] == 1
    assert queued_job_ids(s, "data") == [str(job_id)]


def test_two_sweeps_that_read_the_same_stale_jobs_take_each_once(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given 5 stale queued jobs, and two sweeps that both read them as stale
    s = clean_queues
    ids = [make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES) for _ in range(5)]
    for job_id in ids:
        _set(s, job_id, enqueued_at=utcnow() - timedelta(seconds=60))
    before = utcnow() - timedelta(seconds=5)
    db = get_database(s)
    with db.session() as session:
        first_read = [job_id for job_id, _, _ in stale_queued(session, before, 100)]
    with db.session() as session:
        second_read = [job_id for job_id, _, _ in stale_queued(session, before, 100)]
    assert sorted(first_read) == sorted(second_read) == sorted(ids)
    # When both try to take them for re-publishing, one after the other
    with db.session() as session:
        first = claim_stale(session, first_read, before, utcnow())
    with db.session() as session:
        second = claim_stale(session, second_read, before, utcnow())
    # Then the first took every job and the second none: each is re-published once
    assert sorted(first) == sorted(ids) and second == []


def test_a_sweep_while_another_holds_the_lock_steps_aside(
    clean_queues: Settings, tenant_key: IssuedKey
) -> None:
    # Given a stale job and a sweep of another worker in progress (its lock held)
    s = clean_queues.model_copy(update={"republish_after_s": 5})
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    _set(s, job_id, enqueued_at=utcnow() - timedelta(seconds=60))
    with exclusive(s, "sweep") as held:
        assert held
        # When another sweep starts, Then it does nothing
        assert sweep(s, producer_app(s))["republished"] == 0
    # And once the first pass is over, sweeping works again
    assert sweep(s, producer_app(s))["republished"] == 1
    assert queued_job_ids(s, "data") == [str(job_id)]


def test_beat_drops_a_maintenance_pass_that_waited_longer_than_its_interval(
    settings: Settings,
) -> None:
    # Given a sweep that is due
    s = settings.model_copy(update={"sweep_interval_s": 7.0})
    purge(s, "maintenance")
    # When beat's leader sends it
    dispatch(get_database(s), producer_app(s), Fired(tasks=[(SWEEP_TASK, 7.0)]))
    # Then its message expires one interval after it was sent: a late pass is skipped
    client = redis.Redis.from_url(s.broker_url)
    try:
        [message] = queued_messages(client, s, "maintenance")
    finally:
        client.close()
    expires = datetime.fromisoformat(message["headers"]["expires"])
    assert abs((expires - utcnow()).total_seconds() - 7.0) < 2.0


def test_a_lock_whose_release_was_lost_with_the_broker_is_released_by_the_next_pass(
    clean_queues: Settings,
) -> None:
    # Given a pass holding its lock through a proxy to Redis
    with Proxy("127.0.0.1", 6379) as proxy:
        s = clean_queues.model_copy(update={"broker_url": f"redis://127.0.0.1:{proxy.port}/0"})
        with exclusive(s, "sweep", ttl_s=60) as held:
            assert held
            # When the broker connection resets before the pass releases it
            proxy.refuse()
        proxy.heal()
        # Then the next pass in this process gets the lock at once, not after 60 s
        with exclusive(s, "sweep", ttl_s=60) as held_again:
            assert held_again
