"""The job repository on SQLite and PostgreSQL: submit, claim, finish, paginate."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from config.settings import Settings
from store.db import get_database
from store.jobs import IdempotencyConflict, NewJob, get_job, list_jobs, submit_job
from store.keys import IssuedKey
from store.lifecycle import AttemptRecord, claim_job, finish_job
from store.states import AttemptOutcome, JobState
from store.types import utcnow

LEASE = timedelta(seconds=30)


def new_job(tenant_id: uuid.UUID, key: str | None = None, body: str = "a") -> NewJob:
    return NewJob(
        tenant_id=tenant_id,
        type="data.sandbox.fetch_rates",
        queue="data",
        payload={"base": "EUR"},
        request_hash=body * 64,
        max_attempts=3,
        idempotency_key=key,
    )


def record(number: int = 1, worker: str = "w") -> AttemptRecord:
    now = utcnow()
    return AttemptRecord(
        number=number,
        worker=worker,
        started_at=now,
        finished_at=now,
        outcome=AttemptOutcome.SUCCEEDED,
    )


def test_same_idempotency_key_and_body_returns_the_first_job(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job submitted with an idempotency key
    db = get_database(settings)
    first, created = submit_job(db, new_job(tenant_key.tenant_id, key="k1"))
    assert created
    # When the same request is submitted again
    again, created_again = submit_job(db, new_job(tenant_key.tenant_id, key="k1"))
    # Then the first job comes back and no second row exists
    assert not created_again
    assert again.id == first.id
    with db.session() as session:
        assert len(list_jobs(session, tenant_key.tenant_id, limit=10).jobs) == 1


def test_same_idempotency_key_with_other_body_conflicts(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job submitted with key k1
    db = get_database(settings)
    submit_job(db, new_job(tenant_key.tenant_id, key="k1", body="a"))
    # When another body arrives under the same key, Then it is refused
    with pytest.raises(IdempotencyConflict):
        submit_job(db, new_job(tenant_key.tenant_id, key="k1", body="b"))


def test_second_claim_of_a_job_finds_it_taken(settings: Settings, tenant_key: IssuedKey) -> None:
    # Given a queued job claimed by one worker
    db = get_database(settings)
    job, _ = submit_job(db, new_job(tenant_key.tenant_id))
    with db.session() as session:
        first = claim_job(session, job.id, "worker-a", LEASE, utcnow())
    # When a second delivery tries to claim it
    with db.session() as session:
        second = claim_job(session, job.id, "worker-b", LEASE, utcnow())
    # Then only the first claim succeeded and the row names its owner
    assert first is not None and first.deliveries == 1
    assert second is None
    with db.session() as session:
        row = get_job(session, job.id)
        assert row is not None
        assert row.state == JobState.RUNNING and row.lease_owner == "worker-a"


def test_finish_by_a_worker_that_lost_the_lease_changes_nothing(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job claimed and finished by worker-a
    db = get_database(settings)
    job, _ = submit_job(db, new_job(tenant_key.tenant_id))
    with db.session() as session:
        claim_job(session, job.id, "worker-a", LEASE, utcnow())
    with db.session() as session:
        assert finish_job(
            session,
            job.id,
            "worker-a",
            state=JobState.SUCCEEDED,
            record=record(worker="worker-a"),
            result={"ok": 1},
        )
    # When worker-b tries to finish it as failed
    with db.session() as session:
        finished = finish_job(
            session, job.id, "worker-b", state=JobState.FAILED, record=record(worker="worker-b")
        )
    # Then the job stays succeeded with one attempt row
    assert not finished
    with db.session() as session:
        row = get_job(session, job.id)
        assert row is not None
        assert row.state == JobState.SUCCEEDED
        assert row.result == {"ok": 1}
        assert [a.worker for a in row.attempt_rows] == ["worker-a"]


def test_scheduled_job_cannot_be_claimed_before_its_time(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job to run in an hour
    db = get_database(settings)
    later = NewJob(**{**new_job(tenant_key.tenant_id).__dict__, "run_at": utcnow() + LEASE * 120})
    job, _ = submit_job(db, later)
    # When a worker tries to claim it now
    with db.session() as session:
        claimed = claim_job(session, job.id, "w", LEASE, utcnow())
    # Then it is not claimed and stays queued
    assert claimed is None
    assert job.next_attempt_at is not None and job.enqueued_at is None


def test_keyset_pages_cover_every_job_once_newest_first(
    settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given 7 jobs of one tenant and 2 of another
    db = get_database(settings)
    ids = [submit_job(db, new_job(tenant_key.tenant_id))[0].id for _ in range(7)]
    for _ in range(2):
        submit_job(db, new_job(other_tenant_key.tenant_id))
    # When paging through with 3 per page
    seen: list[uuid.UUID] = []
    stamps: list[datetime] = []
    cursor = None
    while True:
        with db.session() as session:
            page = list_jobs(session, tenant_key.tenant_id, limit=3, cursor=cursor)
        seen.extend(j.id for j in page.jobs)
        stamps.extend(j.created_at for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then every job of the tenant appears once, newest first, and no other tenant's
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 7
    assert stamps == sorted(stamps, reverse=True)
