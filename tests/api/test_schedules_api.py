"""`/v1/schedules` over real SQLite and PostgreSQL: create, read, edit, pause, trigger, delete."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job, Schedule, ScheduleRun
from store.types import utcnow
from tests.api.conftest import FETCH_RATES, auth, error_of, messages_for
from workers.schedule import seed_builtins


def nightly(**extra: Any) -> dict[str, Any]:
    """A valid daily 02:30 Europe/Berlin schedule of a rates fetch."""
    return {
        "name": "nightly-rates",
        "type": FETCH_RATES,
        "payload": {"base": "EUR"},
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        **extra,
    }


def schedule_count(settings: Settings) -> int:
    with get_database(settings).session() as session:
        return int(session.scalar(select(func.count()).select_from(Schedule)) or 0)


def test_create_answers_the_next_five_fire_times_in_utc_and_local(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a daily 02:30 Berlin schedule
    # When it is created
    response = client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # Then it is there with five upcoming times, each 02:30 in Berlin (or 03:30 on a jump day)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["enabled"] is True and body["builtin"] is False
    assert len(body["next_fire_times"]) == 5
    for fire in body["next_fire_times"]:
        local = datetime.fromisoformat(fire["local"])
        utc = datetime.fromisoformat(fire["utc"])
        assert local == utc
        assert (local.hour, local.minute) in {(2, 30), (3, 30)}
    assert body["last_run"] is None and body["failing_streak"] == 0
    # And reading it back gives the same schedule
    again = client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)).json()
    assert again["next_fire_times"] == body["next_fire_times"]


@pytest.mark.parametrize(
    ("change", "code", "loc"),
    [
        ({"cron": "61 2 * * *"}, "invalid_schedule", ["body", "cron"]),
        ({"cron": "* * * *"}, "invalid_schedule", ["body", "cron"]),
        ({"timezone": "Europe/Atlantis"}, "invalid_schedule", ["body", "timezone"]),
        ({"type": "data.nope"}, "unknown_job_type", ["body", "type"]),
        (
            {"type": "payments.stripe.refund", "payload": {"reference": "pi_1"}},
            "not_schedulable",
            ["body", "type"],
        ),
        ({"payload": {"base": 12}}, "invalid_payload", ["body", "payload", "base"]),
        ({"interval_s": 60}, "invalid_schedule", ["body", "cron"]),
        ({"cron": None}, "invalid_schedule", ["body", "cron"]),
        ({"name": "conveyor.sweep"}, "invalid_schedule", ["body", "name"]),
        ({"name": "bad name!"}, "validation_error", ["body", "name"]),
        ({"misfire": "sometimes"}, "validation_error", ["body", "misfire"]),
        ({"cron": None, "interval_s": 0}, "validation_error", ["body", "interval_s"]),
        (
            {"start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"},
            "invalid_schedule",
            ["body", "end_at"],
        ),
    ],
)
def test_invalid_schedule_is_422_naming_the_field_and_writes_nothing(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    change: dict[str, Any],
    code: str,
    loc: list[Any],
) -> None:
    # Given a schedule with one thing wrong
    # When it is submitted
    response = client.post("/v1/schedules", json=nightly(**change), headers=auth(tenant_key))
    # Then the answer is 422 pointing at that field, and no row was written
    error = error_of(response, 422, code)
    details = error["details"]
    locs = [d["loc"] for d in details] if isinstance(details, list) else [details["loc"]]
    assert any(found[: len(loc)] == loc for found in locs), locs
    assert schedule_count(settings) == 0


def test_invalid_patch_is_422_and_leaves_the_schedule_as_it_was(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a schedule
    before = client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key)).json()
    # When a PATCH brings a bad zone, a bad cron or a bad payload
    for patch, code in [
        ({"timezone": "Nowhere/City"}, "invalid_schedule"),
        ({"cron": "0 0 30 2 *"}, "invalid_schedule"),
        ({"payload": {"base": ["EUR"]}}, "invalid_payload"),
    ]:
        response = client.patch("/v1/schedules/nightly-rates", json=patch, headers=auth(tenant_key))
        error_of(response, 422, code)
    # Then the schedule is unchanged
    after = client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)).json()
    assert after == before


@pytest.mark.parametrize("field", ["enabled", "misfire", "overlap", "type", "payload", "timezone"])
def test_a_patch_nulling_a_field_every_schedule_has_is_422_and_changes_nothing(
    client: TestClient, tenant_key: IssuedKey, field: str
) -> None:
    # Given a paused schedule
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    before = client.post("/v1/schedules/nightly-rates/pause", headers=auth(tenant_key)).json()
    # When a PATCH sets one of its always-present fields to null
    response = client.patch(
        "/v1/schedules/nightly-rates", json={field: None}, headers=auth(tenant_key)
    )
    # Then it is refused naming the field, and the schedule is as it was (still paused)
    error = error_of(response, 422, "invalid_schedule")
    assert [d["loc"] for d in error["details"]] == [["body", field]]
    after = client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)).json()
    assert after == before and after["enabled"] is False


@pytest.mark.parametrize(
    ("create", "patch"),
    [({"interval_s": 60, "cron": None, "timezone": None}, "interval_s"), ({}, "cron")],
)
def test_a_patch_nulling_the_only_trigger_is_422_naming_that_field(
    client: TestClient, tenant_key: IssuedKey, create: dict[str, Any], patch: str
) -> None:
    # Given a schedule with one trigger
    body = {k: v for k, v in {**nightly(), **create}.items() if v is not None}
    assert client.post("/v1/schedules", json=body, headers=auth(tenant_key)).status_code == 201
    # When a PATCH nulls that trigger and gives no other
    response = client.patch(
        "/v1/schedules/nightly-rates", json={patch: None}, headers=auth(tenant_key)
    )
    # Then it is refused naming the field it nulled
    error = error_of(response, 422, "invalid_schedule")
    assert [d["loc"] for d in error["details"]] == [["body", patch]]


def test_a_patch_nulling_end_at_clears_it(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given a schedule that ends in 2030
    client.post(
        "/v1/schedules", json=nightly(end_at="2030-01-01T00:00:00Z"), headers=auth(tenant_key)
    )
    # When a PATCH sets end_at to null
    response = client.patch(
        "/v1/schedules/nightly-rates", json={"end_at": None}, headers=auth(tenant_key)
    )
    # Then the schedule no longer ends
    assert response.status_code == 200, response.text
    assert response.json()["end_at"] is None


def test_patching_the_trigger_changes_the_next_fire_times(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a daily schedule
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # When its trigger becomes every 90 seconds
    response = client.patch(
        "/v1/schedules/nightly-rates", json={"interval_s": 90}, headers=auth(tenant_key)
    )
    # Then the cron is gone and the next times are 90 s apart, the first within 90 s
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cron"] is None and body["interval_s"] == 90
    times = [datetime.fromisoformat(t["utc"]) for t in body["next_fire_times"]]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [90] * 4
    assert 0 < (times[0] - utcnow()).total_seconds() <= 90


def test_duplicate_name_is_409(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given a schedule
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # When another of the same name is created
    response = client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # Then it is refused
    error_of(response, 409, "schedule_exists")


def test_pause_and_resume_flip_enabled(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given a schedule
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # When it is paused, then resumed
    paused = client.post("/v1/schedules/nightly-rates/pause", headers=auth(tenant_key)).json()
    resumed = client.post("/v1/schedules/nightly-rates/resume", headers=auth(tenant_key)).json()
    # Then each answer says so
    assert paused["enabled"] is False
    assert resumed["enabled"] is True


def test_trigger_submits_a_job_and_publishes_it(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, broker: Any
) -> None:
    # Given a schedule
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # When it is triggered now
    response = client.post("/v1/schedules/nightly-rates/trigger", headers=auth(tenant_key))
    # Then a job with the schedule's payload is committed and its id is in the broker
    assert response.status_code == 202, response.text
    last = response.json()["last_run"]
    assert last["kind"] == "manual" and last["job_state"] == "queued"
    with get_database(settings).session() as session:
        job = session.get(Job, uuid.UUID(last["job_id"]))
        assert job is not None
        assert job.payload["base"] == "EUR" and job.tenant_id == tenant_key.tenant_id
    assert messages_for(broker, settings, job.queue, str(job.id))


def test_delete_removes_the_schedule_but_keeps_its_jobs(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule that ran once
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    client.post("/v1/schedules/nightly-rates/trigger", headers=auth(tenant_key))
    # When it is deleted
    response = client.delete("/v1/schedules/nightly-rates", headers=auth(tenant_key))
    # Then it is gone, with its runs, and its job stays
    assert response.status_code == 204
    error_of(client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)), 404, "not_found")
    with get_database(settings).session() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 1


ROUTES = [
    ("GET", ""),
    ("GET", "/runs"),
    ("PATCH", ""),
    ("DELETE", ""),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("POST", "/trigger"),
]


def test_another_tenants_schedule_is_404_on_every_route(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given a schedule of one tenant
    client.post("/v1/schedules", json=nightly(), headers=auth(tenant_key))
    # When another tenant names it on every route
    for method, suffix in ROUTES:
        response = client.request(
            method,
            f"/v1/schedules/nightly-rates{suffix}",
            headers=auth(other_tenant_key),
            json={"interval_s": 5} if method == "PATCH" else None,
        )
        # Then it does not exist for them
        error_of(response, 404, "not_found")
    # And their list does not show it; the owner's schedule is untouched and never ran
    names = [
        s["name"]
        for s in client.get("/v1/schedules", headers=auth(other_tenant_key)).json()["items"]
    ]
    assert "nightly-rates" not in names
    mine = client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)).json()
    assert mine["enabled"] is True and mine["cron"] == "30 2 * * *" and mine["last_run"] is None
    # And the same name is free for the other tenant
    created = client.post("/v1/schedules", json=nightly(), headers=auth(other_tenant_key))
    assert created.status_code == 201


def test_builtins_are_listed_and_cannot_be_changed_or_deleted(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the built-in maintenance schedules seeded as beat does
    seed_builtins(settings, utcnow())
    # When a tenant lists schedules
    listed = client.get("/v1/schedules", headers=auth(tenant_key)).json()["items"]
    # Then the built-ins are there, marked as such
    builtin = {s["name"] for s in listed if s["builtin"]}
    assert builtin == {
        "conveyor.publish-due",
        "conveyor.sweep",
        "conveyor.reconcile",
        "conveyor.purge",
    }
    # And deleting, editing, pausing or triggering one is refused, and it stays
    for method, suffix in [("DELETE", ""), ("PATCH", ""), ("POST", "/pause"), ("POST", "/trigger")]:
        response = client.request(
            method,
            f"/v1/schedules/conveyor.sweep{suffix}",
            headers=auth(tenant_key),
            json={"interval_s": 5} if method == "PATCH" else None,
        )
        error_of(response, 409, "builtin_schedule")
    sweep = client.get("/v1/schedules/conveyor.sweep", headers=auth(tenant_key)).json()
    assert sweep["enabled"] is True and sweep["interval_s"] == settings.sweep_interval_s


def test_list_pages_by_name(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given three schedules
    for name in ("a-one", "b-two", "c-three"):
        client.post("/v1/schedules", json=nightly(name=name), headers=auth(tenant_key))
    # When they are listed two at a time
    first = client.get("/v1/schedules?limit=2", headers=auth(tenant_key)).json()
    second = client.get(
        f"/v1/schedules?limit=2&cursor={first['next_cursor']}", headers=auth(tenant_key)
    ).json()
    # Then the pages follow each other by name
    assert [s["name"] for s in first["items"]] == ["a-one", "b-two"]
    assert [s["name"] for s in second["items"]] == ["c-three"]
    assert second["next_cursor"] is None


def test_answers_show_last_run_lag_recent_failures_and_failing_streak(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule with its own retry override, run three times: a success, then two failures
    body = nightly(retry={"max_attempts": 2})
    client.post("/v1/schedules", json=body, headers=auth(tenant_key))
    job_ids = []
    for _ in range(3):
        fired = client.post("/v1/schedules/nightly-rates/trigger", headers=auth(tenant_key))
        job_ids.append(uuid.UUID(fired.json()["last_run"]["job_id"]))
    with get_database(settings).session() as session:
        runs = {r.job_id: r for r in session.scalars(select(ScheduleRun))}
        for job_id, state in zip(job_ids, ["succeeded", "failed", "dead"], strict=True):
            job = session.get(Job, job_id)
            assert job is not None and job.max_attempts == 2
            job.state = state
            job.started_at = runs[job_id].fire_time + timedelta(seconds=2)
    # When it is read
    shown = client.get("/v1/schedules/nightly-rates", headers=auth(tenant_key)).json()
    # Then the last run is the dead job, started 2 s after its slot, and two failures in a row show
    assert shown["last_run"]["job_id"] == str(job_ids[-1])
    assert shown["last_run"]["job_state"] == "dead"
    assert shown["last_run"]["lag_s"] == pytest.approx(2.0)
    assert shown["recent_failures"] == 2 and shown["failing_streak"] == 2
    runs_listed = client.get("/v1/schedules/nightly-rates/runs", headers=auth(tenant_key)).json()
    assert [r["job_state"] for r in runs_listed] == ["dead", "failed", "succeeded"]


def test_patching_only_the_payload_keeps_the_slot_sequence(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an every-90-seconds schedule
    created = client.post(
        "/v1/schedules", json=nightly(cron=None, interval_s=90), headers=auth(tenant_key)
    ).json()
    # When only its payload changes
    response = client.patch(
        "/v1/schedules/nightly-rates", json={"payload": {"base": "USD"}}, headers=auth(tenant_key)
    )
    # Then the payload is new and the next fire times are the same as before
    body = response.json()
    assert body["payload"]["base"] == "USD"
    assert body["next_fire_times"] == created["next_fire_times"]
