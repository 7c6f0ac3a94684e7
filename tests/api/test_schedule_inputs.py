"""What `/v1/schedules` refuses, on real SQLite and PostgreSQL: card data and secrets, lax
types, times past year 9999, zones that are not IANA names; and the tenant's job quota on
`trigger`. Every refusal is a 422 (or 429) with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job, Schedule
from tests.api.conftest import FETCH_RATES, auth, error_of

CHARGE = "payments.sandbox.charge"
PAN = "4242 4242 4242 4242"


def rates(**extra: Any) -> dict[str, Any]:
    """A valid paused yearly rates-fetch schedule."""
    return {
        "name": "s",
        "type": FETCH_RATES,
        "payload": {"base": "EUR"},
        "cron": "0 0 1 1 *",
        "enabled": False,
        **extra,
    }


def charge(description: str) -> dict[str, Any]:
    """A paused yearly sandbox charge with `description`."""
    payload = {
        "amount": 100,
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "description": description,
    }
    return rates(name="pan", type=CHARGE, payload=payload)


def rows(settings: Settings, model: type) -> int:
    with get_database(settings).session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def loc_of(error: dict[str, Any]) -> list[Any]:
    details = error["details"]
    return list(details[0]["loc"] if isinstance(details, list) else details["loc"])


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (charge(f"card {PAN} cvc 123"), ["body", "payload", "description"], "card_number"),
        (charge("card 4242424242424242"), ["body", "payload", "description"], "card_number"),
        (charge("ok, cvc 123"), ["body", "payload", "description"], "security_code"),
        (rates(name="4242424242424242"), ["body", "name"], "card_number"),
        (rates(name="5555-5555-5555-4444"), ["body", "name"], "card_number"),
    ],
)
def test_card_data_in_a_new_schedule_is_refused_as_a_submit_refuses_it(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    body: dict[str, Any],
    loc: list[Any],
    kind: str,
) -> None:
    # Given a schedule whose payload or name holds card data
    # When it is created
    response = client.post("/v1/schedules", json=body, headers=auth(tenant_key))
    # Then it is refused like a job submit (422 card_data_refused, where but not what)
    error = error_of(response, 422, "card_data_refused")
    assert error["details"] == {"loc": loc, "kind": kind}
    assert "4242" not in response.text and "5555" not in response.text
    # And nothing was written
    assert rows(settings, Schedule) == 0 and rows(settings, Job) == 0


def test_a_job_submit_and_a_schedule_refuse_the_same_payload_the_same_way(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given one charge payload holding a card number
    body = charge(f"card {PAN}")
    job = {"type": body["type"], "payload": body["payload"]}
    # When it is submitted as a job and as a schedule
    as_job = client.post("/v1/jobs", json=job, headers=auth(tenant_key))
    as_schedule = client.post("/v1/schedules", json=body, headers=auth(tenant_key))
    # Then both answers carry the same error
    assert error_of(as_job, 422, "card_data_refused") == error_of(
        as_schedule, 422, "card_data_refused"
    )


def test_card_data_patched_into_a_schedule_is_refused_and_nothing_changes(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a clean charge schedule
    created = client.post("/v1/schedules", json=charge("monthly"), headers=auth(tenant_key))
    assert created.status_code == 201, created.text
    # When a PATCH puts a card number, or a secret key, into its payload
    for description, code in [
        (f"card {PAN}", "card_data_refused"),
        ("sk_live_" + "a" * 24, "secret_refused"),
    ]:
        payload = {**created.json()["payload"], "description": description}
        response = client.patch(
            "/v1/schedules/pan", json={"payload": payload}, headers=auth(tenant_key)
        )
        # Then it is refused and the schedule keeps its payload
        error_of(response, 422, code)
    after = client.get("/v1/schedules/pan", headers=auth(tenant_key)).json()
    assert after["payload"]["description"] == "monthly"


def test_a_stored_payload_holding_a_card_number_fires_no_job(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule whose stored payload holds a card number (written before screening)
    client.post("/v1/schedules", json=charge("monthly"), headers=auth(tenant_key))
    with get_database(settings).session() as session:
        session.execute(
            update(Schedule)
            .where(Schedule.name == "pan")
            .values(
                payload={
                    "amount": 100,
                    "currency": "eur",
                    "payment_method": "pm_card_visa",
                    "description": PAN,
                }
            )
        )
    # When it is triggered
    response = client.post("/v1/schedules/pan/trigger", headers=auth(tenant_key))
    # Then no job holds the number: the run failed the submit's screen
    assert response.status_code == 202, response.text
    assert rows(settings, Job) == 0
    assert response.json()["last_run"]["outcome"] == "failed"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": None, "interval_s": 3600, "start_at": "9999-12-31T23:00:00Z"}, "start_at"),
        ({"start_at": "9999-12-31T00:00:00Z"}, "start_at"),
        ({"start_at": "9999-01-01T00:00:00Z"}, "start_at"),
        ({"timezone": "Pacific/Kiritimati", "start_at": "9999-12-31T00:00:00-14:00"}, "start_at"),
        ({"timezone": "Pacific/Kiritimati", "end_at": "0001-01-01T00:00:00+14:00"}, "end_at"),
        ({"end_at": "9999-12-31T23:59:59Z"}, "end_at"),
        ({"timezone": "Pacific/Kiritimati", "start_at": "0001-01-01T00:00:00Z"}, "start_at"),
    ],
)
def test_a_window_past_year_9999_is_422_naming_the_field_and_writes_nothing(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    change: dict[str, Any],
    field: str,
) -> None:
    # Given a schedule whose start or end lies where fire times cannot be computed or shown
    # When it is created
    response = client.post("/v1/schedules", json=rates(**change), headers=auth(tenant_key))
    # Then it is a 422 naming that field, and nothing was written
    assert response.status_code == 422, response.text
    assert loc_of(response.json()["error"])[:2] == ["body", field]
    assert rows(settings, Schedule) == 0
    # And the tenant's schedules still list
    assert client.get("/v1/schedules", headers=auth(tenant_key)).status_code == 200


def test_a_window_past_year_9999_is_422_on_patch_too(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a schedule
    before = client.post("/v1/schedules", json=rates(), headers=auth(tenant_key)).json()
    # When a PATCH moves its start past the last year
    for patch in ({"start_at": "9999-12-31T00:00:00Z"}, {"end_at": "9999-12-31T00:00:00-14:00"}):
        response = client.patch("/v1/schedules/s", json=patch, headers=auth(tenant_key))
        # Then it is a 422 naming the field, and the schedule is as it was
        assert response.status_code == 422, response.text
        assert loc_of(response.json()["error"])[1] in patch
    assert client.get("/v1/schedules/s", headers=auth(tenant_key)).json() == before


def test_a_stored_schedule_whose_times_pass_year_9999_lists_with_fewer_times(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given schedules whose next slots, as stored, run into the end of year 9999
    client.post("/v1/schedules", json=rates(name="cron"), headers=auth(tenant_key))
    client.post(
        "/v1/schedules",
        json=rates(name="every", cron=None, interval_s=3600, timezone="Pacific/Kiritimati"),
        headers=auth(tenant_key),
    )
    last_hour = datetime(9999, 12, 31, 23, tzinfo=UTC)
    with get_database(settings).session() as session:
        session.execute(
            update(Schedule)
            .where(Schedule.name.in_(["cron", "every"]))
            .values(next_fire_at=last_hour, anchor_at=last_hour, start_at=last_hour)
        )
    # When they are listed and read
    listed = client.get("/v1/schedules", headers=auth(tenant_key))
    cron = client.get("/v1/schedules/cron", headers=auth(tenant_key))
    every = client.get("/v1/schedules/every", headers=auth(tenant_key))
    # Then every answer is a 200; times that cannot be shown are left out
    assert listed.status_code == cron.status_code == every.status_code == 200
    assert len(cron.json()["next_fire_times"]) == 1
    assert every.json()["next_fire_times"] == []  # 23:00 UTC is year 10000 at UTC+14


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": None, "interval_s": True}, "interval_s"),
        ({"cron": None, "interval_s": "60"}, "interval_s"),
        ({"cron": None, "interval_s": "NaN"}, "interval_s"),
        ({"enabled": "no"}, "enabled"),
        ({"enabled": "off"}, "enabled"),
        ({"enabled": 0}, "enabled"),
        ({"start_at": 0}, "start_at"),
        ({"start_at": "5"}, "start_at"),
        ({"start_at": "0.5"}, "start_at"),
        ({"end_at": 4102444800}, "end_at"),
        ({"retry": {"max_attempts": "5"}}, "retry"),
        ({"retry": {"max_attempts": True}}, "retry"),
        ({"retry": {"base_s": "2"}}, "retry"),
        ({"retry": True}, "retry"),
    ],
)
def test_lax_values_are_422_naming_the_field(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    change: dict[str, Any],
    field: str,
) -> None:
    # Given a schedule with a value of the wrong JSON type (pydantic's lax mode would read it)
    # When it is created, and patched onto an existing schedule
    created = client.post("/v1/schedules", json=rates(**change), headers=auth(tenant_key))
    client.post("/v1/schedules", json=rates(name="t"), headers=auth(tenant_key))
    patched = client.patch("/v1/schedules/t", json=change, headers=auth(tenant_key))
    # Then both are 422 naming the field, and only the valid schedule exists
    for response in (created, patched):
        assert response.status_code == 422, response.text
        assert loc_of(response.json()["error"])[:2] == ["body", field]
    assert rows(settings, Schedule) == 1


def test_whole_numbers_and_iso_times_are_still_accepted(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a schedule with an integer interval, an ISO start and integer retry settings
    body = rates(
        cron=None,
        interval_s=60,
        enabled=True,
        start_at="2030-01-01T00:00:00+01:00",
        retry={"max_attempts": 5, "base_s": 2},
    )
    # When it is created
    response = client.post("/v1/schedules", json=body, headers=auth(tenant_key))
    # Then it is accepted as given
    assert response.status_code == 201, response.text
    assert response.json()["interval_s"] == 60
    assert response.json()["retry"] == {"max_attempts": 5, "base_s": 2.0}


@pytest.mark.parametrize(
    "zone",
    [
        "",
        "localtime",
        "posixrules",
        "Factory",
        "right/UTC",
        "posix/Europe/Berlin",
        "EST5EDT",
        "CST6CDT",
    ],
)
def test_only_canonical_iana_zone_names_are_accepted(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, zone: str
) -> None:
    # Given a zone name that zoneinfo may find but that is not an IANA zone name
    # When a schedule names it
    response = client.post("/v1/schedules", json=rates(timezone=zone), headers=auth(tenant_key))
    # Then it is 422 naming `timezone`, and nothing was written
    assert response.status_code == 422, response.text
    assert loc_of(response.json()["error"])[:2] == ["body", "timezone"]
    assert rows(settings, Schedule) == 0


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("US/Pacific", "America/Los_Angeles"),
        ("US/Eastern", "America/New_York"),
        ("EST", "America/Panama"),
        ("CET", "Europe/Brussels"),
        ("GMT+0", "Etc/GMT"),
        ("Zulu", "Etc/UTC"),
        ("UCT", "Etc/UTC"),
        ("Asia/Calcutta", "Asia/Kolkata"),
    ],
)
def test_a_zone_alias_is_refused_naming_the_canonical_name_to_use(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, alias: str, canonical: str
) -> None:
    # Given a tzdata alias (a link such as US/Pacific), which zoneinfo resolves
    # When a schedule names it
    response = client.post("/v1/schedules", json=rates(timezone=alias), headers=auth(tenant_key))
    # Then it is 422 naming `timezone` and the canonical name to use, and nothing was written
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert loc_of(error)[:2] == ["body", "timezone"]
    assert error["details"][0]["canonical"] == canonical
    assert canonical in error["message"]
    assert rows(settings, Schedule) == 0


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "Etc/UTC",
        "Europe/Berlin",
        "America/Los_Angeles",
        "America/New_York",
        "Asia/Kolkata",
        "America/Argentina/Buenos_Aires",
    ],
)
def test_iana_zone_names_are_accepted(client: TestClient, tenant_key: IssuedKey, zone: str) -> None:
    # Given an IANA zone name; When a schedule names it; Then it is created in that zone
    response = client.post("/v1/schedules", json=rates(timezone=zone), headers=auth(tenant_key))
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == zone


def test_trigger_counts_against_the_open_job_quota_like_a_submit(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a tenant allowed 3 unfinished jobs, with a schedule
    with TestClient(
        create_app(settings.model_copy(update={"api_open_jobs_per_tenant": 3}))
    ) as client:
        client.post("/v1/schedules", json=rates(name="q1"), headers=auth(tenant_key))
        # When it triggers the schedule four times (nothing finishes meanwhile)
        answers = [
            client.post("/v1/schedules/q1/trigger", headers=auth(tenant_key)) for _ in range(4)
        ]
        submit = client.post(
            "/v1/jobs",
            json={"type": FETCH_RATES, "payload": {"base": "EUR"}},
            headers=auth(tenant_key),
        )
    # Then the first three are accepted and the fourth is a 429 quota_exceeded, like a submit
    assert [r.status_code for r in answers[:3]] == [202, 202, 202], answers[-1].text
    error_of(answers[3], 429, "quota_exceeded")
    assert answers[3].headers["Retry-After"]
    error_of(submit, 429, "quota_exceeded")
    # And only three jobs exist
    assert rows(settings, Job) == 3
