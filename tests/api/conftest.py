"""The API's world for tests: an app on the parametrized settings, auth headers, Redis queues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import AuditEvent, Job
from tests.conftest import REDIS_URL
from tests.support.broker import queued_messages

FETCH_RATES = "data.sandbox.fetch_rates"
CHARGE = "payments.sandbox.charge"


def auth(key: IssuedKey | str) -> dict[str, str]:
    """The Authorization header presenting this key."""
    secret = key if isinstance(key, str) else key.secret
    return {"Authorization": f"Bearer {secret}"}


def rates_job(base: str = "EUR", **extra: Any) -> dict[str, Any]:
    """A valid `data.sandbox.fetch_rates` submit body."""
    return {"type": FETCH_RATES, "payload": {"base": base}, **extra}


def job_rows(settings: Settings, tenant_id: uuid.UUID | None = None) -> list[Job]:
    """The job rows in the database, optionally only one tenant's."""
    stmt = select(Job)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    with get_database(settings).session() as session:
        return list(session.scalars(stmt))


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the response is the one error shape with this status and code; its `error`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def messages_for(
    broker: redis.Redis, settings: Settings, queue: str, job_id: str
) -> list[dict[str, Any]]:
    """The messages in a queue that carry this job id."""
    return [m for m in queued_messages(broker, settings, queue) if job_id in m["decoded_body"][0]]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API app built on the test's settings (real database, real Redis)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A plain Redis client to inspect what the API published."""
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


def dead_job(client: TestClient, settings: Settings, key: IssuedKey) -> str:
    """A job of the key's tenant, made dead in the database."""
    job_id: str = client.post("/v1/jobs", json=rates_job(), headers=auth(key)).json()["id"]
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(state="dead"))
    return job_id


def audit_rows(settings: Settings) -> list[AuditEvent]:
    """Every audit row (a replay that ran writes one)."""
    with get_database(settings).session() as session:
        return list(session.scalars(select(AuditEvent)))
