"""`POST /v1/jobs/{id}/cancel` in each state a job can be in."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import update

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.lifecycle import claim_job
from store.models import Job
from store.states import JobState
from store.types import utcnow
from tasks.executor import Execution, execute
from tests.api.conftest import auth, error_of, rates_job
from tests.tasks.factories import load, sandbox_stats, with_sandbox


def _submit(client: TestClient, key: IssuedKey, run_at: str | None = None) -> uuid.UUID:
    body = rates_job(run_at=run_at) if run_at else rates_job()
    response = client.post("/v1/jobs", json=body, headers=auth(key))
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def _cancel(client: TestClient, key: IssuedKey, job_id: uuid.UUID | str) -> Response:
    response: Response = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    return response


def test_cancelling_a_queued_job_means_it_never_runs(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a queued job
    job_id = _submit(client, tenant_key)
    # When it is cancelled
    response = _cancel(client, tenant_key, job_id)
    # Then it is cancelled at once, and its message, when delivered, runs nothing
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert execute(job_id, with_sandbox(settings, sandbox)) is Execution.NOT_CLAIMED
    assert load(settings, job_id).state == JobState.CANCELLED
    assert sandbox_stats(sandbox)["requests"] == 0


def test_cancelling_a_scheduled_job_cancels_it(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job scheduled for tomorrow
    job_id = _submit(client, tenant_key, run_at=(utcnow() + timedelta(days=1)).isoformat())
    # When it is cancelled, Then it is cancelled with no wait left
    response = _cancel(client, tenant_key, job_id)
    assert response.status_code == 200
    job = load(settings, job_id)
    assert job.state == JobState.CANCELLED and job.next_attempt_at is None


def test_cancelling_a_retrying_job_cancels_it(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job waiting for its next attempt
    job_id = _submit(client, tenant_key)
    with get_database(settings).session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="retrying", next_attempt_at=utcnow() + timedelta(minutes=5))
        )
    # When it is cancelled, Then it is cancelled
    assert _cancel(client, tenant_key, job_id).json()["state"] == "cancelled"
    assert load(settings, job_id).state == JobState.CANCELLED


def test_cancelling_a_running_job_is_accepted_and_recorded_for_its_checkpoint(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job a worker is running
    job_id = _submit(client, tenant_key)
    with get_database(settings).session() as session:
        assert claim_job(session, job_id, "w", timedelta(seconds=30), utcnow())
    # When it is cancelled
    response = _cancel(client, tenant_key, job_id)
    # Then the request is accepted, the job still runs, and the request is on the row
    assert response.status_code == 202
    assert response.json()["state"] == "running"
    assert response.json()["cancel_requested_at"] is not None
    assert load(settings, job_id).cancel_requested_at is not None


def test_cancelling_a_finished_job_is_409(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job that already succeeded
    job_id = _submit(client, tenant_key)
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="succeeded"))
    # When it is cancelled, Then the answer is 409 naming its state, and nothing changes
    error = error_of(_cancel(client, tenant_key, job_id), 409, "job_finished")
    assert error["details"]["state"] == "succeeded"
    assert load(settings, job_id).state == JobState.SUCCEEDED


def test_cancelling_another_tenants_job_is_404_and_changes_nothing(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given a job of another tenant
    job_id = _submit(client, other_tenant_key)
    # When this tenant tries to cancel it, Then it is not found and stays queued
    error_of(_cancel(client, tenant_key, job_id), 404, "not_found")
    error_of(_cancel(client, tenant_key, "not-a-uuid"), 404, "not_found")
    assert load(settings, job_id).state == JobState.QUEUED
