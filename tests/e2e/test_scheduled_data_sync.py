"""A data pull scheduled through the API runs on its own: a real beat process fires it, a real
worker runs it, the records land; the next slots of the unchanged (conditional) source are
304s that write nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from api.app import create_app
from config.settings import Settings
from store.data_models import DataRecord, DataSync
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job, ScheduleRun
from tests.api.conftest import auth
from tests.data.conftest import SECRET_KEY, feed_stats, set_feed
from tests.e2e.stack import beat_process, stack_env, worker_process
from tests.support.procs import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ITEMS = 250
SETTINGS = {"data_secret_key": SECRET_KEY, "outbound_allow_loopback": "true", "beat_tick_s": "0.2"}


def stored(s: Settings) -> int:
    with get_database(s).session() as session:
        return int(session.scalar(select(func.count()).select_from(DataRecord)) or 0)


def succeeded_runs(s: Settings) -> list[uuid.UUID]:
    """The jobs of the schedule's runs that succeeded, in slot order."""
    with get_database(s).session() as session:
        rows = session.execute(
            select(ScheduleRun.job_id)
            .join(Job, Job.id == ScheduleRun.job_id)
            .where(Job.state == "succeeded")
            .order_by(ScheduleRun.fire_time)
        )
        return [row.job_id for row in rows]


def test_a_pull_scheduled_through_the_api_is_fired_by_beat_and_run_by_a_worker(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a source of 250 records, its secret, and a pull scheduled every 2 s, all set
    # through the API, with a beat and a worker running on the same database
    s = fresh_settings.model_copy(
        update={"data_secret_key": SecretStr(SECRET_KEY), "outbound_allow_loopback": True}
    )
    set_feed(sandbox, reset=True, items=ITEMS)
    headers = auth(key)
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, **SETTINGS)
    with (
        worker_process(env, logs_dir),
        beat_process(env, logs_dir),
        TestClient(create_app(s)) as api,
    ):
        api.put(
            "/v1/data/secrets/feed", json={"value": "dt_sandbox_feed_token"}, headers=headers
        ).raise_for_status()
        api.put(
            "/v1/data/sources/items",
            json={
                "url": f"{sandbox}/data/items",
                "records_path": "data",
                "next_cursor_path": "meta.next_cursor",
                "conditional": True,
                "auth_header": "Authorization",
                "auth_prefix": "Bearer ",
                "secret": "feed",
            },
            headers=headers,
        ).raise_for_status()
        created = api.post(
            "/v1/schedules",
            json={
                "name": "items-often",
                "type": "data.http.pull",
                "payload": {"source": "items"},
                "interval_s": 2,
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        # When beat fires three slots and the worker runs their jobs
        wait_until(lambda: len(succeeded_runs(s)) >= 3, "three scheduled pulls to succeed", 45)
        api.post("/v1/schedules/items-often/pause", headers=headers).raise_for_status()
    # Then the first stored every record once, and the later ones were 304s
    with get_database(s).session() as session:
        jobs = [session.get(Job, job_id) for job_id in succeeded_runs(s)]
        sync = session.scalars(select(DataSync)).one()
    results = [job.result or {} for job in jobs if job is not None]
    assert stored(s) == ITEMS
    assert (results[0]["inserted"], results[0]["pages"]) == (ITEMS, 3)
    assert all(r["not_modified"] and r["inserted"] == r["updated"] == 0 for r in results[1:])
    assert feed_stats(sandbox)["requests"]["items:304"] >= 2
    assert sync.last_success_at is not None and sync.last_error is None
    set_feed(sandbox, reset=True)
