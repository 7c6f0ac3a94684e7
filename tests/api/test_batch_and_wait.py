"""Batch submit (all or nothing, one transaction) and the long-poll form of GET /v1/jobs/{id}."""

from __future__ import annotations

import threading
import time
import uuid

from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from store.jobs import NEVER_PUBLISHED
from store.keys import IssuedKey
from tasks.executor import execute
from tests.api.conftest import auth, error_of, job_rows, rates_job
from tests.conftest import make_settings
from tests.support.broker import queued_job_ids
from tests.tasks.factories import with_sandbox


def test_batch_of_valid_jobs_is_committed_and_published_together(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given three valid jobs
    body = {"jobs": [rates_job("EUR"), rates_job("USD"), rates_job("GBP")]}
    # When they are submitted as one batch
    response = client.post("/v1/jobs/batch", json=body, headers=auth(tenant_key))
    # Then all three are accepted, stored, and their ids (only) are in the queue
    assert response.status_code == 202, response.text
    ids = [j["id"] for j in response.json()["jobs"]]
    assert len(ids) == 3 and {j["state"] for j in response.json()["jobs"]} == {"queued"}
    assert {str(j.id) for j in job_rows(settings, tenant_key.tenant_id)} == set(ids)
    assert set(ids) <= set(queued_job_ids(settings, "data"))


def test_batch_with_one_invalid_job_is_refused_whole_naming_its_index(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a batch whose second job has a bad payload
    body = {"jobs": [rates_job("EUR"), rates_job("eur1"), rates_job("GBP")]}
    # When it is submitted
    error = error_of(
        client.post("/v1/jobs/batch", json=body, headers=auth(tenant_key)), 422, "invalid_payload"
    )
    # Then the error points at jobs[1].payload.base and nothing was written
    assert error["details"][0]["loc"][:5] == ["body", "jobs", 1, "payload", "base"]
    assert job_rows(settings, tenant_key.tenant_id) == []


def test_batch_over_the_limit_or_empty_is_422(client: TestClient, tenant_key: IssuedKey) -> None:
    too_many = {"jobs": [rates_job()] * 1001}
    error_of(
        client.post("/v1/jobs/batch", json=too_many, headers=auth(tenant_key)),
        422,
        "validation_error",
    )
    error_of(
        client.post("/v1/jobs/batch", json={"jobs": []}, headers=auth(tenant_key)),
        422,
        "validation_error",
    )


def test_batch_with_the_broker_down_is_accepted_and_left_for_the_sweeper(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an API whose broker is unreachable
    down = make_settings(
        settings.database_url, settings.broker_key_prefix, broker_url="redis://127.0.0.1:1/0"
    )
    with TestClient(create_app(down)) as client:
        # When a batch is submitted
        response = client.post(
            "/v1/jobs/batch", json={"jobs": [rates_job(), rates_job()]}, headers=auth(tenant_key)
        )
    # Then it is accepted and both rows wait for the sweeper to publish them
    assert response.status_code == 202
    rows = job_rows(settings, tenant_key.tenant_id)
    assert len(rows) == 2 and all(r.enqueued_at == NEVER_PUBLISHED for r in rows)


def worker_finishes_later(
    settings: Settings, sandbox: str, job_id: str, delay_s: float
) -> threading.Timer:
    """Started: a worker runs the job (against the sandbox) `delay_s` from now."""
    worker_settings = with_sandbox(settings, sandbox)
    timer = threading.Timer(delay_s, lambda: execute(uuid.UUID(job_id), worker_settings))
    timer.start()
    return timer


def test_wait_returns_as_soon_as_the_job_finishes(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a queued job that a worker will finish in about 0.5 s
    job_id = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
    timer = worker_finishes_later(settings, sandbox, job_id, 0.5)
    # When the client long-polls with wait=10
    began = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}?wait=10", headers=auth(tenant_key))
    took = time.monotonic() - began
    timer.join()
    # Then the answer is the finished job, well before the 10 s were up
    assert response.json()["state"] == "succeeded"
    assert 0.4 < took < 5


def test_wait_gives_up_at_its_deadline_with_the_current_state(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a job nobody runs
    job_id = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
    # When the client waits 0.5 s
    began = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}?wait=0.5", headers=auth(tenant_key))
    # Then it gets the job, still queued, after about that long
    assert response.json()["state"] == "queued"
    assert 0.4 < time.monotonic() - began < 3


def test_wait_beyond_the_maximum_is_422(client: TestClient, tenant_key: IssuedKey) -> None:
    job_id = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
    error_of(
        client.get(f"/v1/jobs/{job_id}?wait=31", headers=auth(tenant_key)), 422, "validation_error"
    )


def test_submit_with_wait_answers_200_with_the_finished_job(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a worker that runs the job as soon as it is queued (polled, so a slow
    # publish under load delays the run instead of missing it)
    worker_settings = with_sandbox(settings, sandbox)

    submitted = threading.Event()
    ran: set[str] = set()

    def run_queued() -> None:
        # Runs every id that shows up on the queue until the submit has answered.
        deadline = time.monotonic() + 8
        while not submitted.is_set() and time.monotonic() < deadline:
            for job_id in set(queued_job_ids(settings, "data")) - ran:
                ran.add(job_id)
                execute(uuid.UUID(job_id), worker_settings)
            time.sleep(0.05)

    worker = threading.Thread(target=run_queued)
    worker.start()
    # When a job is submitted with wait=10
    began = time.monotonic()
    response = client.post("/v1/jobs?wait=10", json=rates_job(), headers=auth(tenant_key))
    took = time.monotonic() - began
    submitted.set()
    worker.join()
    # Then the one request returns the finished job with its attempt, well inside the wait
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["state"] == "succeeded" and job["result"]["base"] == "EUR"
    assert [a["outcome"] for a in job["attempt_history"]] == ["succeeded"]
    assert took < 5


def test_submit_with_wait_that_runs_out_answers_202_with_the_queued_job(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given no worker at all
    # When a job is submitted with wait=0.5
    began = time.monotonic()
    response = client.post("/v1/jobs?wait=0.5", json=rates_job(), headers=auth(tenant_key))
    # Then after about that long the job comes back accepted and still queued, its id published
    assert response.status_code == 202
    assert response.json()["state"] == "queued"
    assert 0.4 < time.monotonic() - began < 3
    assert response.json()["id"] in queued_job_ids(settings, "data")


def test_repeated_submit_with_wait_answers_the_earlier_job_once_it_ends(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a job submitted with an idempotency key, that a worker finishes about 0.3 s later
    headers = {**auth(tenant_key), "Idempotency-Key": "wait-replay-1"}
    job_id = client.post("/v1/jobs", json=rates_job(), headers=headers).json()["id"]
    timer = worker_finishes_later(settings, sandbox, job_id, 0.3)
    # When the same request is sent again with wait=10
    response = client.post("/v1/jobs?wait=10", json=rates_job(), headers=headers)
    timer.join()
    # Then it is the same job, marked as a replay, answered once it had finished
    assert response.status_code == 200
    assert response.headers["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == job_id and response.json()["state"] == "succeeded"
    assert len(job_rows(settings, tenant_key.tenant_id)) == 1


def test_wait_still_waits_for_the_end_while_redis_cannot_answer(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given an API whose Redis for end notices refuses connections, and a queued job that a
    # worker will finish in about 0.8 s
    app = create_app(settings.model_copy(update={"guard_redis_url": "redis://127.0.0.1:1/0"}))
    with TestClient(app) as client:
        job_id = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
        timer = worker_finishes_later(settings, sandbox, job_id, 0.8)
        # When the client long-polls with wait=10
        began = time.monotonic()
        response = client.get(f"/v1/jobs/{job_id}?wait=10", headers=auth(tenant_key))
        took = time.monotonic() - began
        timer.join()
    # Then it waited (reading the job) and answers with it finished, before the 10 s were up
    assert response.json()["state"] == "succeeded", response.text
    assert 0.7 < took < 8
