"""Data syncs on a schedule, on SQLite and PostgreSQL: schedules made through the API for
`data.fx.sync_rates` (cron) and `data.http.pull` (interval), fired by beat's own tick, publish
their jobs, and the jobs store the records; the next slot of a conditional pull is a 304."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from store.keys import IssuedKey
from store.types import utcnow
from tasks.executor import Execution, execute
from tasks.publish import producer_app
from tests.api.conftest import auth
from tests.data.conftest import feed_stats, set_feed
from tests.support.broker import queued_job_ids
from tests.tasks.factories import load
from workers.beat import BeatRunner

TOKEN = "dt_sandbox_feed_token"
CURRENCIES = 9


class Clock:
    """Beat's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api(data_settings: Settings) -> Iterator[TestClient]:
    """The API on the data test's settings."""
    with TestClient(create_app(data_settings)) as client:
        yield client


def first_fire(schedule: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(schedule["next_fire_times"][0]["utc"])


def fire(s: Settings, beat: BeatRunner, clock: Clock, at: datetime) -> list[str]:
    """Tick beat just after `at`; the job ids it published to the data queue, oldest first."""
    before = set(queued_job_ids(s, "data"))
    clock.now = at + timedelta(seconds=1)
    beat.tick()
    return [job for job in reversed(queued_job_ids(s, "data")) if job not in before]


def run_published(s: Settings, job_ids: list[str]) -> list[Any]:
    """Run each published job as a worker would; the job rows after."""
    loaded = []
    for job_id in map(uuid.UUID, job_ids):
        assert execute(job_id, s) is Execution.SUCCEEDED
        loaded.append(load(s, job_id))
    return loaded


def test_scheduled_fx_sync_and_pull_fire_from_beat_and_store_their_records(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a pull source (conditional) with its secret, and two schedules, all set through
    # the API: reference rates on weekdays at 16:00 Berlin time, the pull every hour
    s = data_settings
    headers = auth(tenant_key)
    set_feed(s.sandbox_url, items=150)
    assert api.put("/v1/data/secrets/feed-token", json={"value": TOKEN}, headers=headers).is_success
    source = {
        "url": f"{s.sandbox_url}/data/items",
        "records_path": "data",
        "next_cursor_path": "meta.next_cursor",
        "conditional": True,
        "auth_header": "Authorization",
        "auth_prefix": "Bearer ",
        "secret": "feed-token",
    }
    assert api.put("/v1/data/sources/items", json=source, headers=headers).is_success
    fx = api.post(
        "/v1/schedules",
        json={
            "name": "ecb-rates",
            "type": "data.fx.sync_rates",
            "payload": {"window": "daily"},
            "cron": "0 16 * * 1-5",
            "timezone": "Europe/Berlin",
        },
        headers=headers,
    )
    pull = api.post(
        "/v1/schedules",
        json={
            "name": "items-hourly",
            "type": "data.http.pull",
            "payload": {"source": "items"},
            "interval_s": 3600,
        },
        headers=headers,
    )
    assert (fx.status_code, pull.status_code) == (201, 201), (fx.text, pull.text)
    clock = Clock(utcnow())
    beat = BeatRunner(s, producer_app(s), clock=clock, holder="beat-data-test")
    # When beat ticks just after each schedule's first slot, and the published jobs run
    slots = sorted([(first_fire(fx.json()), "fx"), (first_fire(pull.json()), "pull")])
    published = {name: fire(s, beat, clock, at) for at, name in slots}
    jobs = {name: run_published(s, ids) for name, ids in published.items()}
    # Then each slot published one job of its type, and its records are stored
    assert {name: [job.type for job in rows] for name, rows in jobs.items()} == {
        "fx": ["data.fx.sync_rates"],
        "pull": ["data.http.pull"],
    }
    rates = api.get("/v1/data/fx/reference_rates", headers=headers).json()["items"]
    items = api.get("/v1/data/http/items", params={"limit": 200}, headers=headers).json()
    assert len(rates) == CURRENCIES
    assert {r["job_id"] for r in rates} == {str(jobs["fx"][0].id)}
    assert jobs["pull"][0].result["inserted"] == 150 and len(items["items"]) == 150
    assert {r["job_id"] for r in items["items"]} == {str(jobs["pull"][0].id)}
    runs = api.get("/v1/schedules/items-hourly/runs", headers=headers).json()
    assert [(r["outcome"], r["job_id"], r["job_state"]) for r in runs] == [
        ("fired", str(jobs["pull"][0].id), "succeeded")
    ]
    # And the pull's next slot, with nothing changed at the source, is one 304 and no writes
    following = first_fire(api.get("/v1/schedules/items-hourly", headers=headers).json())
    again = run_published(s, fire(s, beat, clock, following))
    assert [job.result["not_modified"] for job in again] == [True]
    assert (again[0].result["inserted"], again[0].result["updated"]) == (0, 0)
    assert feed_stats(s.sandbox_url)["requests"]["items:304"] == 1
