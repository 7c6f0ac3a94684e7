"""`/metrics`: behind a token; backlog, stuck jobs and breakers are read at scrape time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import update

from api.app import create_app
from config.settings import Settings
from integrations.guard import get_guard
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job
from store.schedules import ScheduleSpec, create_schedule
from store.states import ErrorClass, JobState
from store.types import utcnow
from tasks import heartbeats
from tasks.heartbeats import Heartbeat
from tasks.providers import close_breaker
from tasks.schedules import fire_due
from tests.api.conftest import auth, error_of, rates_job

TOKEN = "metrics-token-for-tests"
MIN_3 = timedelta(minutes=3)
MIN_10 = timedelta(minutes=10)


def every_minute(name: str) -> ScheduleSpec:
    """A rates schedule every 60 s."""
    return ScheduleSpec(
        name=name, job_type="data.sandbox.fetch_rates", payload={"base": "EUR"}, interval_s=60
    )


@pytest.fixture
def metered(settings: Settings) -> Iterator[TestClient]:
    """The API with a metrics token configured."""
    with TestClient(
        create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    ) as c:
        yield c


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_off_without_a_token_and_closed_to_a_wrong_one(
    client: TestClient, metered: TestClient, tenant_key: IssuedKey
) -> None:
    # Given one API without a metrics token and one with
    # When /metrics is fetched without, with a tenant's API key and with a wrong token
    off = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    anonymous = metered.get("/metrics")
    tenant = metered.get("/metrics", headers=auth(tenant_key))
    wrong = metered.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    # Then nothing is shown: 404 where metrics are off, 401 otherwise
    error_of(off, 404, "not_found")
    error_of(anonymous, 401, "unauthorized")
    error_of(tenant, 401, "unauthorized")
    error_of(wrong, 401, "unauthorized")


def test_backlog_age_stuck_jobs_and_breakers_move_as_jobs_flow(
    metered: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given three jobs submitted on the data queue (published, nobody consuming)
    before = scrape(metered)
    ids = [
        metered.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
        for _ in range(3)
    ]
    # ...the oldest published ten minutes ago, one dead after a provider outage
    with get_database(settings).session() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(ids[0]))
            .values(enqueued_at=utcnow() - timedelta(minutes=10))
        )
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(ids[1]))
            .values(state=JobState.DEAD.value, error_class=ErrorClass.TRANSIENT.value)
        )
    # ...and the sandbox provider's breaker tripped
    get_guard(settings).breaker("sandbox").trip()
    try:
        # When /metrics is scraped
        after = scrape(metered)
    finally:
        close_breaker(settings, "sandbox")
    closed = scrape(metered)
    # Then the DB backlog, the broker, the age, the dead count and the breaker all show it
    assert after[("conveyor_queue_jobs", (("queue", "data"), ("state", "queued")))] == 2
    assert after[("conveyor_broker_queue_length", (("queue", "data"),))] == 3
    assert after[("conveyor_queue_oldest_age_seconds", (("queue", "data"),))] >= 590
    stuck = (
        "conveyor_jobs_stuck",
        (
            ("error_class", "transient"),
            ("provider", "sandbox"),
            ("state", "dead"),
            ("type", "data.sandbox.fetch_rates"),
        ),
    )
    assert after[stuck] == 1
    assert after[("conveyor_breaker_state", (("provider", "sandbox"), ("state", "open")))] == 1
    assert closed[("conveyor_breaker_state", (("provider", "sandbox"), ("state", "open")))] == 0
    submitted = (
        "conveyor_jobs_submitted_total",
        (("tenant", str(tenant_key.tenant_id)), ("type", "data.sandbox.fetch_rates")),
    )
    assert after[submitted] - before.get(submitted, 0) == 3
    assert after[("conveyor_scrape_error", (("source", "database"),))] == 0


def test_schedule_lag_and_last_firing_and_consumers_are_scraped(
    metered: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule every 60 s that fired 3 s after its slot, and one whose slot passed two
    # minutes ago unfired (no beat leads)
    db = get_database(settings)
    fired = create_schedule(db, tenant_key.tenant_id, every_minute("fired"), utcnow() - MIN_10)
    assert fired.next_fire_at is not None
    fire_due(db, settings, fired, fired.next_fire_at + timedelta(seconds=3), None)
    create_schedule(db, tenant_key.tenant_id, every_minute("late"), utcnow() - MIN_3)
    # ...and a worker's heartbeat for the data queue
    client = heartbeats.redis_client(settings)
    now = time.time()
    heartbeats.write(client, settings, Heartbeat("w@h:1", ("data",), now, now, now - 4))
    try:
        # When /metrics is scraped
        found = scrape(metered)
    finally:
        heartbeats.remove(client, settings, "w@h:1")
        client.close()
    # Then the late schedule shows its lag, the fired one its firing time and delay
    scope = str(tenant_key.tenant_id)
    late = found[("conveyor_schedule_lag_seconds", (("schedule", "late"), ("scope", scope)))]
    assert 100 <= late <= 300
    labels = (("schedule", "fired"), ("scope", scope))
    fired_at = found[("conveyor_schedule_last_fired_timestamp_seconds", labels)]
    assert fired_at == (fired.next_fire_at + timedelta(seconds=3)).timestamp()
    assert found[("conveyor_schedule_last_fire_delay_seconds", labels)] == 3.0
    # ...and the queues their live consumers and when they last consumed
    assert found[("conveyor_queue_consumers", (("queue", "data"),))] == 1
    assert found[("conveyor_queue_consumers", (("queue", "payments"),))] == 0
    assert 4 <= found[("conveyor_queue_last_consumed_seconds", (("queue", "data"),))] < 60
    assert ("conveyor_queue_last_consumed_seconds", (("queue", "payments"),)) not in found
    for source in ("schedules", "consumers"):
        assert found[("conveyor_scrape_error", (("source", source),))] == 0
