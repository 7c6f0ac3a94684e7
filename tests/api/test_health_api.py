"""Liveness, readiness, the job-type catalogue and the generated docs, over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from integrations.registry import JOB_TYPES
from store.keys import IssuedKey
from tasks import heartbeats
from tasks.heartbeats import Heartbeat
from tests.api.conftest import CHARGE, FETCH_RATES, auth, error_of, rates_job
from tests.conftest import make_settings


def test_healthz_answers_ok(client: TestClient) -> None:
    # Given a running API
    # When liveness is asked
    response = client.get("/healthz")

    # Then it is up
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_and_broker_answer(client: TestClient) -> None:
    # Given a reachable database and Redis
    # When readiness is asked
    response = client.get("/readyz")

    # Then every check passes, and each queue is idle
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "broker": "ok", "consumers": "ok"}
    assert {q: v["verdict"] for q, v in body["queues"].items()} == {
        "data": "idle",
        "maintenance": "idle",
        "payments": "idle",
        "webhooks": "idle",
    }


def test_readyz_is_503_while_a_queue_with_work_has_no_live_consumer(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job waiting in the data queue and no worker at all
    submitted = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
    assert submitted.status_code == 202, submitted.text
    # When readiness is asked
    without = client.get("/readyz")
    # ...and again once a worker's heartbeat says it consumes the data queue
    redis_client = heartbeats.redis_client(settings)
    now = time.time()
    try:
        heartbeats.write(
            redis_client, settings, Heartbeat("w1@host:7", ("data", "payments"), now, now, now)
        )
        with_consumer = client.get("/readyz")
    finally:
        heartbeats.remove(redis_client, settings, "w1@host:7")
        redis_client.close()
    # Then without a consumer it is 503 naming the queue, and with one it is ready
    assert without.status_code == 503, without.text
    assert without.json()["checks"]["consumers"] == "unavailable: data: no_consumer"
    assert without.json()["error"] == {
        "code": "not_ready",
        "message": "not ready: consumers: unavailable: data: no_consumer",
        "details": {"consumers": "unavailable: data: no_consumer"},
    }
    assert int(without.headers["Retry-After"]) > 0
    data = without.json()["queues"]["data"]
    assert (data["verdict"], data["queued"], data["in_broker"], data["consumers"]) == (
        "no_consumer",
        1,
        1,
        [],
    )
    assert with_consumer.status_code == 200, with_consumer.text
    data = with_consumer.json()["queues"]["data"]
    assert (data["verdict"], data["consumers"]) == ("consuming", ["w1@host:7"])
    assert 0 <= data["last_consumed_s_ago"] < 60


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(settings: Settings) -> None:
    # Given an API whose broker has nothing listening
    down = make_settings(
        settings.database_url, settings.broker_key_prefix, broker_url="redis://127.0.0.1:1/0"
    )

    # When readiness is asked
    with TestClient(create_app(down)) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started

    # Then it is unavailable because of the broker alone, and says so promptly
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unavailable")
    assert elapsed < 5.0


@pytest.mark.parametrize(
    "unreachable",
    ["postgresql+psycopg://postgres@127.0.0.1:1/conveyor", "sqlite:///{file}/conveyor.db"],
    ids=["postgres-not-listening", "sqlite-cannot-open"],
)
def test_readyz_is_503_naming_the_database_when_it_is_unreachable(
    settings: Settings, tmp_path: Path, unreachable: str
) -> None:
    # Given an API whose database cannot be reached (for SQLite: its directory is a file)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    down = make_settings(unreachable.format(file=blocker), settings.broker_key_prefix)

    # When readiness is asked
    with TestClient(create_app(down)) as client:
        response = client.get("/readyz")

    # Then it is unavailable because of the database, the broker still fine
    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert checks["database"].startswith("unavailable")
    assert checks["broker"] == "ok"


def test_job_types_lists_every_type_with_its_payload_schema(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a tenant with a key
    # When it asks what it can submit
    response = client.get("/v1/job-types", headers=auth(tenant_key))

    # Then every registered type is listed with its queue and a JSON schema
    assert response.status_code == 200, response.text
    types = {t["name"]: t for t in response.json()}
    assert set(types) == set(JOB_TYPES)
    assert {FETCH_RATES, CHARGE, "payments.stripe.refund", "payments.adyen.charge"} <= set(types)
    assert types[FETCH_RATES]["queue"] == "data"
    assert types[CHARGE]["queue"] == "payments"
    assert "base" in types[FETCH_RATES]["payload_schema"]["properties"]
    assert "payment_method" in types[CHARGE]["payload_schema"]["properties"]
    assert all(t["description"] for t in types.values())


def test_job_types_requires_a_key(client: TestClient, settings: Settings) -> None:
    # Given no Authorization header, then a wrong key
    # When the catalogue is asked for
    missing = client.get("/v1/job-types")
    wrong = client.get("/v1/job-types", headers=auth("cvk_not-a-real-key"))

    # Then both are 401 with a challenge
    for response in (missing, wrong):
        error_of(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_docs_and_openapi_schema_are_served(client: TestClient) -> None:
    # Given a running API
    # When the docs and the schema are fetched
    docs = client.get("/docs")
    schema = client.get("/openapi.json")

    # Then both are served, and the schema describes the jobs routes
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/job-types", "/healthz", "/readyz"} <= set(paths)
