"""`/v1/jobs` over HTTP: outcomes checked in the response, the database row and the Redis queue."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from config.settings import Settings
from integrations.registry import JOB_TYPES
from store.db import get_database
from store.jobs import NEVER_PUBLISHED
from store.keys import IssuedKey
from store.models import Job
from store.states import JobState
from store.types import utcnow
from tests.api.conftest import (
    CHARGE,
    FETCH_RATES,
    auth,
    error_of,
    job_rows,
    messages_for,
    rates_job,
)
from tests.conftest import make_settings

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def charge_job(payment_method: str = "pm_card_visa") -> dict[str, object]:
    """A `payments.sandbox.charge` submit body."""
    return {
        "type": CHARGE,
        "payload": {"amount": 1999, "currency": "eur", "payment_method": payment_method},
    }


def submit(client: TestClient, key: IssuedKey, body: dict[str, object], **headers: str) -> str:
    """Submit a job that must be accepted; its id."""
    response = client.post("/v1/jobs", json=body, headers={**auth(key), **headers})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def cursor_of(obj: object) -> str:
    """A cursor in the API's encoding wrapping an arbitrary value."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


# Submit


def test_submitting_a_valid_job_commits_the_row_and_publishes_only_its_id(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, broker: redis.Redis
) -> None:
    # Given a tenant with a key
    # When it submits a fetch_rates job
    response = client.post("/v1/jobs", json=rates_job("EUR"), headers=auth(tenant_key))

    # Then the API accepts it as queued
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued"
    assert body["type"] == FETCH_RATES
    job_id = body["id"]
    # and the row is committed under the tenant, stamped as published
    [row] = job_rows(settings)
    assert str(row.id) == job_id
    assert row.tenant_id == tenant_key.tenant_id
    assert row.state == JobState.QUEUED.value
    assert row.payload == {"base": "EUR", "symbols": []}
    assert row.queue == "data"
    assert row.enqueued_at is not None
    # and the data queue's kombu list holds one message naming the task and carrying only the id
    [message] = messages_for(broker, settings, "data", job_id)
    assert message["headers"]["task"] == FETCH_RATES
    args, kwargs, _embed = message["decoded_body"]
    assert args == [job_id]
    assert kwargs == {}
    assert "EUR" not in json.dumps(message)  # nor in headers such as argsrepr


def test_an_unknown_job_type_is_refused_with_the_known_types_and_nothing_stored(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a type nobody registered
    body = {"type": "data.sandbox.nope", "payload": {"base": "EUR"}}

    # When it is submitted
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then it is a 422 listing what can be submitted, and no row exists
    error = error_of(response, 422, "unknown_job_type")
    assert error["details"]["known_types"] == sorted(JOB_TYPES)
    assert job_rows(settings) == []


@pytest.mark.parametrize(
    "payload",
    [{"base": "eur1"}, {"base": "eur"}, {}, {"symbols": ["USD"]}],
    ids=["bad-base", "lower-case-base", "empty", "missing-base"],
)
def test_a_payload_failing_the_type_schema_is_refused_with_where_it_failed(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, payload: dict[str, object]
) -> None:
    # Given a payload the fetch_rates schema rejects
    body = {"type": FETCH_RATES, "payload": payload}

    # When it is submitted
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then it is a 422 pointing into the payload at `base`, and no row exists
    error = error_of(response, 422, "invalid_payload")
    assert error["details"][0]["loc"][:3] == ["body", "payload", "base"]
    assert job_rows(settings) == []


def test_an_unexpected_payload_field_is_refused(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a payload with a field the schema does not know
    body = {"type": FETCH_RATES, "payload": {"base": "EUR", "callback": "http://x"}}

    # When it is submitted
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then the extra field is named, and no row exists
    error = error_of(response, 422, "invalid_payload")
    assert [d["loc"] for d in error["details"]] == [["body", "payload", "callback"]]
    assert job_rows(settings) == []


@pytest.mark.parametrize("pan", ["4242424242424242", "4242 4242 4242 4242", "tok_4000056655665556"])
def test_a_card_number_as_payment_method_is_refused_and_never_stored(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, pan: str
) -> None:
    # Given a charge payload carrying a PAN instead of a provider token
    # When it is submitted
    response = client.post("/v1/jobs", json=charge_job(pan), headers=auth(tenant_key))

    # Then it is refused at the door, the number not echoed back, and nothing is stored
    error = error_of(response, 422, "invalid_payload")
    assert error["details"][0]["loc"] == ["body", "payload", "payment_method"]
    assert pan not in response.text
    assert job_rows(settings) == []


def test_a_charge_with_a_provider_token_is_accepted_on_the_payments_queue(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, broker: redis.Redis
) -> None:
    # Given a charge payload with a token
    # When it is submitted
    job_id = submit(client, tenant_key, charge_job("pm_card_visa"))

    # Then the row is on the payments queue and its id is in the payments list
    [row] = job_rows(settings)
    assert row.queue == "payments"
    assert row.payload == {"amount": 1999, "currency": "eur", "payment_method": "pm_card_visa"}
    [message] = messages_for(broker, settings, "payments", job_id)
    assert message["decoded_body"][0] == [job_id]


def test_a_malformed_json_body_is_a_400_and_nothing_stored(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a body cut off mid-object
    content = b'{"type": "data.sandbox.fetch_rates", "payload": {"base": '

    # When it is posted as JSON
    response = client.post(
        "/v1/jobs",
        content=content,
        headers={**auth(tenant_key), "Content-Type": "application/json"},
    )

    # Then it is a 400 malformed_json, and no row exists
    error_of(response, 400, "malformed_json")
    assert job_rows(settings) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "cvk_no_scheme"}],
    ids=["missing", "empty-bearer", "no-scheme"],
)
def test_a_request_without_a_key_is_401_with_a_challenge(
    client: TestClient, settings: Settings, headers: dict[str, str]
) -> None:
    # Given no usable Authorization header
    # When a job is submitted
    response = client.post("/v1/jobs", json=rates_job(), headers=headers)

    # Then it is a 401 inviting a bearer token, and no row exists
    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert job_rows(settings) == []


def test_a_wrong_key_is_401(client: TestClient, settings: Settings, tenant_key: IssuedKey) -> None:
    # Given a key that was never issued (a tenant exists with another key)
    wrong = tenant_key.secret[:-4] + "xxxx"

    # When it is presented to submit and to list
    submitted = client.post("/v1/jobs", json=rates_job(), headers=auth(wrong))
    listed = client.get("/v1/jobs", headers=auth(wrong))

    # Then both are 401, and no row exists
    error_of(submitted, 401, "unauthorized")
    error_of(listed, 401, "unauthorized")
    assert submitted.headers["WWW-Authenticate"] == "Bearer"
    assert job_rows(settings) == []


def test_a_body_over_the_configured_size_is_413_and_nothing_stored(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an app that accepts bodies up to 2 KiB
    small = make_settings(settings.database_url, settings.broker_key_prefix, max_body_bytes=2048)
    body = {"type": FETCH_RATES, "payload": {"base": "EUR", "symbols": ["USD"] * 500}}

    # When a larger body is submitted, its length declared
    with TestClient(create_app(small)) as client:
        response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then it is a 413 before anything is parsed, and no row exists
    error = error_of(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": 2048}
    assert job_rows(settings) == []


def test_a_streamed_body_over_the_configured_size_is_413_and_nothing_stored(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an app that accepts bodies up to 2 KiB
    small = make_settings(settings.database_url, settings.broker_key_prefix, max_body_bytes=2048)

    def chunks():
        yield b'{"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR", "pad": "'
        for _ in range(4):
            yield b"a" * 1000
        yield b'"}}'

    # When a larger body is streamed without a Content-Length
    with TestClient(create_app(small)) as client:
        response = client.post(
            "/v1/jobs",
            content=chunks(),
            headers={**auth(tenant_key), "Content-Type": "application/json"},
        )

    # Then it is the same 413, not a parse error, and no row exists
    assert "content-length" not in {k.lower() for k in response.request.headers}
    error_of(response, 413, "payload_too_large")
    assert job_rows(settings) == []


# Read


def test_reading_an_unknown_job_is_404(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given an id no job has
    missing = uuid.uuid4()

    # When it is read
    response = client.get(f"/v1/jobs/{missing}", headers=auth(tenant_key))

    # Then it is a 404
    error = error_of(response, 404, "not_found")
    assert error["details"] == {"id": str(missing)}


@pytest.mark.parametrize("job_id", ["not-a-uuid", "1' OR 1=1", "1;DROP TABLE jobs", "0" * 300])
def test_reading_a_non_uuid_id_is_404_never_500(
    client: TestClient, tenant_key: IssuedKey, job_id: str
) -> None:
    # Given an id that cannot be a job's
    # When it is read
    response = client.get(f"/v1/jobs/{job_id}", headers=auth(tenant_key))

    # Then it is the ordinary 404
    error_of(response, 404, "not_found")


def test_reading_another_tenants_job_is_404_like_a_missing_one(
    client: TestClient, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given a job of another tenant, and an id that does not exist
    theirs = submit(client, other_tenant_key, rates_job())
    missing = str(uuid.uuid4())

    # When this tenant reads both
    foreign = client.get(f"/v1/jobs/{theirs}", headers=auth(tenant_key))
    absent = client.get(f"/v1/jobs/{missing}", headers=auth(tenant_key))

    # Then both are 404 (not 403) with the same shape and message
    foreign_error = error_of(foreign, 404, "not_found")
    absent_error = error_of(absent, 404, "not_found")
    assert foreign_error["message"] == absent_error["message"]
    assert foreign_error["details"] == {"id": theirs}
    # and the owner still reads it
    assert client.get(f"/v1/jobs/{theirs}", headers=auth(other_tenant_key)).status_code == 200


def test_reading_an_own_new_job_shows_it_queued_with_no_attempts(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a job just submitted
    job_id = submit(client, tenant_key, rates_job("USD"))

    # When it is read back
    response = client.get(f"/v1/jobs/{job_id}", headers=auth(tenant_key))

    # Then it is queued, untried, with an empty attempt history
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == job_id
    assert body["state"] == "queued"
    assert body["attempts"] == 0
    assert body["attempt_history"] == []
    assert body["payload"] == {"base": "USD", "symbols": []}
    assert body["result"] is None and body["error"] is None


# Idempotency


def test_repeating_a_submit_with_the_same_idempotency_key_replays_the_first_job(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, broker: redis.Redis
) -> None:
    # Given a job submitted with an Idempotency-Key
    key = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", json=rates_job(), headers={**auth(tenant_key), **key})
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers

    # When the same request is sent again
    again = client.post("/v1/jobs", json=rates_job(), headers={**auth(tenant_key), **key})

    # Then it is a 200 replay of the same job, and only one row and one message exist
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["idempotency_key"] == "order-42"
    [row] = job_rows(settings)
    assert str(row.id) == first.json()["id"]
    assert row.idempotency_key == "order-42"
    assert len(messages_for(broker, settings, "data", first.json()["id"])) == 1


def test_reusing_an_idempotency_key_with_a_different_body_is_409(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job submitted with an Idempotency-Key
    key = {"Idempotency-Key": "order-43"}
    first_id = submit(client, tenant_key, rates_job("EUR"), **key)

    # When the key is sent with another body
    response = client.post("/v1/jobs", json=rates_job("USD"), headers={**auth(tenant_key), **key})

    # Then it is a 409, and the first job is the only row
    error = error_of(response, 409, "idempotency_key_reused")
    assert error["details"] == {"idempotency_key": "order-43"}
    [row] = job_rows(settings)
    assert str(row.id) == first_id
    assert row.payload["base"] == "EUR"


def test_the_same_idempotency_key_from_another_tenant_is_a_separate_job(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given a job submitted by one tenant with an Idempotency-Key
    key = {"Idempotency-Key": "shared-key"}
    mine = submit(client, tenant_key, rates_job(), **key)

    # When another tenant uses the same key and body
    response = client.post("/v1/jobs", json=rates_job(), headers={**auth(other_tenant_key), **key})

    # Then it creates its own job
    assert response.status_code == 202, response.text
    assert "Idempotent-Replayed" not in response.headers
    theirs = response.json()["id"]
    assert theirs != mine
    assert [str(r.id) for r in job_rows(settings, tenant_key.tenant_id)] == [mine]
    assert [str(r.id) for r in job_rows(settings, other_tenant_key.tenant_id)] == [theirs]


def test_an_overlong_idempotency_key_is_refused(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a key longer than the column holds
    key = {"Idempotency-Key": "k" * 256}

    # When it is used
    response = client.post("/v1/jobs", json=rates_job(), headers={**auth(tenant_key), **key})

    # Then it is a 422 naming the header, and nothing is stored
    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["header", "Idempotency-Key"]
    assert job_rows(settings) == []


# Scheduling and the broker


def test_a_job_scheduled_in_the_future_is_stored_but_not_published(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, broker: redis.Redis
) -> None:
    # Given a run_at an hour from now
    run_at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)

    # When the job is submitted
    response = client.post(
        "/v1/jobs", json=rates_job(run_at=run_at.isoformat()), headers=auth(tenant_key)
    )

    # Then it is queued with its time set
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued"
    assert datetime.fromisoformat(body["next_attempt_at"]) == run_at
    # and the row waits for the due poller, unpublished
    [row] = job_rows(settings)
    assert row.next_attempt_at == run_at
    assert row.enqueued_at is None
    # and no message for it is in Redis
    assert messages_for(broker, settings, "data", body["id"]) == []


def test_a_run_at_without_a_time_zone_is_refused(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a naive run_at
    # When the job is submitted
    response = client.post(
        "/v1/jobs", json=rates_job(run_at="2030-01-01T00:00:00"), headers=auth(tenant_key)
    )

    # Then it is a 422 on run_at, and nothing is stored
    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "run_at"]
    assert job_rows(settings) == []


def broker_down(settings: Settings) -> Settings:
    """The test's settings with a broker URL nothing listens on."""
    return make_settings(
        settings.database_url, settings.broker_key_prefix, broker_url=UNREACHABLE_BROKER
    )


def test_a_submit_while_the_broker_is_down_is_committed_for_the_sweeper(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an API whose broker has nothing listening
    # When a job is submitted
    with TestClient(create_app(broker_down(settings))) as client:
        response = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))

    # Then it is accepted
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "queued"
    # and the committed row is marked unpublished, so the sweeper publishes it later
    [row] = job_rows(settings)
    assert str(row.id) == response.json()["id"]
    assert row.state == JobState.QUEUED.value
    assert row.next_attempt_at is None
    assert row.enqueued_at == NEVER_PUBLISHED


def test_a_submit_while_the_broker_is_down_answers_within_two_seconds(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an API whose broker has nothing listening
    with TestClient(create_app(broker_down(settings))) as client:
        # When a job is submitted
        started = time.monotonic()
        response = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        elapsed = time.monotonic() - started

    # Then the answer does not wait on the broker
    assert response.status_code == 202, response.text
    assert elapsed < 2.0, f"took {elapsed:.2f}s"


# List


def test_listing_pages_newest_first_through_every_job_exactly_once(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given five jobs submitted one after another
    created = [submit(client, tenant_key, rates_job()) for _ in range(5)]

    # When the list is walked two at a time
    seen: list[str] = []
    page_sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/v1/jobs", params=params, headers=auth(tenant_key))
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        page_sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then every job appears once, newest first, and the last page has no cursor
    assert seen == list(reversed(created))
    assert page_sizes == [2, 2, 1]


def test_listing_filters_by_type(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given jobs of both types
    rates = [submit(client, tenant_key, rates_job()) for _ in range(2)]
    charges = [submit(client, tenant_key, charge_job())]

    # When the list is filtered by each type
    by_rates = client.get("/v1/jobs", params={"type": FETCH_RATES}, headers=auth(tenant_key))
    by_charge = client.get("/v1/jobs", params={"type": CHARGE}, headers=auth(tenant_key))

    # Then each holds exactly its own
    assert [i["id"] for i in by_rates.json()["items"]] == list(reversed(rates))
    assert [i["id"] for i in by_charge.json()["items"]] == charges


def test_listing_filters_by_state(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given three jobs, one of which has since succeeded
    ids = [submit(client, tenant_key, rates_job()) for _ in range(3)]
    with get_database(settings).session() as session:
        session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(ids[1]))
            .values(state=JobState.SUCCEEDED.value, finished_at=utcnow())
        )

    # When the list is filtered by state
    succeeded = client.get("/v1/jobs", params={"state": "succeeded"}, headers=auth(tenant_key))
    queued = client.get("/v1/jobs", params={"state": "queued"}, headers=auth(tenant_key))
    dead = client.get("/v1/jobs", params={"state": "dead"}, headers=auth(tenant_key))

    # Then each state lists only its jobs
    assert [i["id"] for i in succeeded.json()["items"]] == [ids[1]]
    assert [i["id"] for i in queued.json()["items"]] == [ids[2], ids[0]]
    assert dead.json() == {"items": [], "next_cursor": None}


def test_listing_with_an_unknown_state_is_422(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given a state that does not exist
    # When the list is filtered by it
    response = client.get("/v1/jobs", params={"state": "exploded"}, headers=auth(tenant_key))

    # Then it is a 422 on the state query parameter
    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["query", "state"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        cursor_of({"a": 1}),
        cursor_of([5, 5]),
        cursor_of(["2024-01-01T00:00:00+00:00", 5]),
        cursor_of(["2024-01-01T00:00:00+00:00", "not-a-uuid"]),
        cursor_of(["2024-01-01T00:00:00", str(uuid.uuid4())]),
    ],
    ids=["garbage", "not-base64", "object", "numbers", "int-id", "bad-id", "naive-time"],
)
def test_listing_with_a_cursor_the_api_did_not_issue_is_422(
    client: TestClient, tenant_key: IssuedKey, cursor: str
) -> None:
    # Given a cursor that is not one of ours
    # When the list is asked for the page after it
    response = client.get("/v1/jobs", params={"cursor": cursor}, headers=auth(tenant_key))

    # Then it is a 422 invalid_cursor, never a 500
    error = error_of(response, 422, "invalid_cursor")
    assert error["details"] == {"loc": ["query", "cursor"]}


def test_listing_never_shows_another_tenants_jobs(
    client: TestClient, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given jobs of two tenants
    mine = submit(client, tenant_key, rates_job())
    theirs = {submit(client, other_tenant_key, rates_job()) for _ in range(3)}

    # When each tenant lists, with and without filters
    listings = [
        client.get("/v1/jobs", params=params, headers=auth(tenant_key)).json()
        for params in ({}, {"type": FETCH_RATES}, {"state": "queued"}, {"limit": 1})
    ]

    # Then this tenant sees only its own job
    for listing in listings:
        assert [i["id"] for i in listing["items"]] == [mine]
    their_listing = client.get("/v1/jobs", headers=auth(other_tenant_key)).json()
    assert {i["id"] for i in their_listing["items"]} == theirs


def test_a_limit_below_one_is_422(client: TestClient, tenant_key: IssuedKey) -> None:
    # Given a page size of zero
    # When the list is asked for
    response = client.get("/v1/jobs", params={"limit": 0}, headers=auth(tenant_key))

    # Then it is a 422 on limit
    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["query", "limit"]


# Error shape


def test_every_error_answers_in_the_one_json_shape(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given requests that fail for every kind of reason
    key = auth(tenant_key)
    json_header = {**key, "Content-Type": "application/json"}
    cases = [
        (client.get("/v1/jobs"), 401, "unauthorized"),
        (client.get("/v1/jobs/not-a-uuid", headers=key), 404, "not_found"),
        (client.get("/v1/nowhere", headers=key), 404, "not_found"),
        (client.delete("/v1/jobs", headers=key), 405, "method_not_allowed"),
        (client.post("/v1/jobs", content=b"{", headers=json_header), 400, "malformed_json"),
        (client.post("/v1/jobs", json=[], headers=key), 422, "validation_error"),
        (client.post("/v1/jobs", json={"payload": {}}, headers=key), 422, "validation_error"),
        (client.post("/v1/jobs", json={"type": "x"}, headers=key), 422, "unknown_job_type"),
        (client.post("/v1/jobs", json=rates_job("e"), headers=key), 422, "invalid_payload"),
        (client.get("/v1/jobs?cursor=x", headers=key), 422, "invalid_cursor"),
        (client.get("/v1/jobs?limit=x", headers=key), 422, "validation_error"),
    ]

    # When each answers
    # Then each body is exactly {"error": {"code", "message", "details"}}
    for response, status, code in cases:
        error_of(response, status, code)
