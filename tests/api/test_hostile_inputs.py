"""Inputs the schema once let through to a 500 or a wrong answer: each kind is a 4xx, no write.

Every test runs on SQLite and PostgreSQL (the `settings` fixture): the same input must get the
same answer on both.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from config.settings import Settings
from integrations.payments.signing import stripe_signature
from store.db import get_database
from store.keys import IssuedKey
from store.models import ProviderEvent
from tests.api.conftest import audit_rows, auth, dead_job, error_of, job_rows, rates_job

OUT_OF_RANGE = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
NOT_ISO = [0, 0.5, "0", "0.5", "1700000000", True, "2026-11-29", "tomorrow"]
NUL = "ab\u0000cd"
LONE_SURROGATE = "ab\ud800cd"


def post_json(client: TestClient, path: str, body: Any, key: IssuedKey) -> Any:
    """POST `body` as ASCII JSON (lone surrogates go out as `\\udXXX` escapes, as in the wild)."""
    headers = {**auth(key), "Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def locs(error: dict[str, Any]) -> list[list[Any]]:
    """Every `loc` an error's details name."""
    details = error["details"]
    if isinstance(details, dict):
        details = [details]
    return [list(d["loc"]) for d in details if "loc" in d]


@pytest.mark.parametrize("run_at", OUT_OF_RANGE + NOT_ISO)
def test_a_run_at_out_of_range_or_not_iso_is_422_naming_it_and_nothing_stored(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, run_at: Any
) -> None:
    # Given a submit and a batch whose run_at is out of range in UTC, or not ISO 8601
    single = rates_job(run_at=run_at)
    batch = {"jobs": [rates_job(), rates_job(run_at=run_at)]}
    # When both are sent
    one = client.post("/v1/jobs", json=single, headers=auth(tenant_key))
    many = client.post("/v1/jobs/batch", json=batch, headers=auth(tenant_key))
    # Then both are 422 naming the field, and no row was written
    assert ["body", "run_at"] in locs(error_of(one, 422, "validation_error"))
    assert ["body", "jobs", 1, "run_at"] in locs(error_of(many, 422, "validation_error"))
    assert job_rows(settings) == []


@pytest.mark.parametrize("param", ["created_after", "created_before"])
@pytest.mark.parametrize("value", [*OUT_OF_RANGE, "0", "0.5", "1700000000"])
def test_a_list_filter_time_out_of_range_or_not_iso_is_422_naming_it(
    client: TestClient, tenant_key: IssuedKey, param: str, value: str
) -> None:
    # When the list is filtered by such a time
    response = client.get("/v1/jobs", params={param: value}, headers=auth(tenant_key))
    # Then it is 422 naming the parameter
    assert ["query", param] in locs(error_of(response, 422, "validation_error"))


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("value", OUT_OF_RANGE + NOT_ISO)
def test_a_replay_filter_time_out_of_range_or_not_iso_is_422_and_nothing_replayed(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, field: str, value: Any
) -> None:
    # Given a dead job
    job_id = dead_job(client, settings, tenant_key)
    # When a replay filters on such a time
    body = {"filter": {field: value}}
    response = client.post("/v1/jobs/replay", json=body, headers=auth(tenant_key))
    # Then it is 422 naming the field; the job is still dead and nothing was audited
    assert ["body", "filter", field] in locs(error_of(response, 422, "validation_error"))
    assert [j.state for j in job_rows(settings) if str(j.id) == job_id] == ["dead"]
    assert audit_rows(settings) == []


@pytest.mark.parametrize("dry_run", [0, 1, "no", "off", "false", "yes", "true", None])
def test_dry_run_takes_only_json_booleans_and_a_lax_one_replays_nothing(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, dry_run: Any
) -> None:
    # Given a dead job
    job_id = dead_job(client, settings, tenant_key)
    # When a replay says dry_run with something that is not a JSON boolean
    response = client.post("/v1/jobs/replay", json={"dry_run": dry_run}, headers=auth(tenant_key))
    # Then it is 422 and the job was not replayed
    assert ["body", "dry_run"] in locs(error_of(response, 422, "validation_error"))
    assert [j.state for j in job_rows(settings) if str(j.id) == job_id] == ["dead"]
    assert audit_rows(settings) == []


@pytest.mark.parametrize("text", [NUL, LONE_SURROGATE])
@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"type": "payments.stripe.refund", "payload": {"reference": "{t}"}}, ["reference"]),
        ({"type": "data.sandbox.fetch_rates", "payload": {"base": "{t}"}}, ["base"]),
        ({"type": "{t}", "payload": {}}, ["type"]),
        ({"type": "data.sandbox.fetch_rates", "payload": {"{t}": 1}}, None),
    ],
)
def test_unstorable_text_anywhere_in_a_submit_is_422_on_both_databases(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    text: str,
    body: dict[str, Any],
    loc: list[str] | None,
) -> None:
    # Given a submit with a NUL or a lone surrogate in one of its strings
    sent = json.loads(json.dumps(body).replace("{t}", json.dumps(text)[1:-1]))
    # When it is submitted alone and in a batch
    one = post_json(client, "/v1/jobs", sent, tenant_key)
    many = post_json(client, "/v1/jobs/batch", {"jobs": [sent]}, tenant_key)
    # Then both are 422 and nothing was written
    error_of(one, 422, "validation_error")
    error_of(many, 422, "validation_error")
    if loc is not None and loc != ["type"]:
        assert ["body", "payload", *loc] in locs(one.json()["error"])
    assert job_rows(settings) == []


@pytest.mark.parametrize("text", [NUL, "\u0000"])
@pytest.mark.parametrize("param", ["type", "error_class"])
def test_a_nul_in_a_list_filter_is_422_on_both_databases(
    client: TestClient, tenant_key: IssuedKey, text: str, param: str
) -> None:
    # When the list is filtered by text holding a NUL
    response = client.get("/v1/jobs", params={param: text}, headers=auth(tenant_key))
    # Then it is 422 naming the parameter (not a database error)
    assert ["query", param] in locs(error_of(response, 422, "validation_error"))


@pytest.mark.parametrize("field", ["type", "error_class"])
def test_a_nul_in_the_replay_filter_is_422_and_nothing_replayed(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, field: str
) -> None:
    # Given a dead job
    dead_job(client, settings, tenant_key)
    # When a replay filters on text holding a NUL
    body = {"filter": {field: NUL}}
    response = client.post("/v1/jobs/replay", json=body, headers=auth(tenant_key))
    # Then it is 422 and nothing was replayed
    error_of(response, 422, "validation_error")
    assert audit_rows(settings) == []


def test_a_cursor_nesting_json_thousands_deep_is_invalid_cursor(
    client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given cursors that decode to JSON nested 5,000 deep, short and long
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode().rstrip("=")
    shallow_deep = base64.urlsafe_b64encode(b"[" * 300 + b"]" * 300).decode().rstrip("=")
    for cursor in (deep, shallow_deep):
        # When the list is asked for with it
        response = client.get("/v1/jobs", params={"cursor": cursor}, headers=auth(tenant_key))
        # Then it is the cursor error, not a crash
        error_of(response, 422, "invalid_cursor")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"type": "data.sandbox.fetch_rates", "payload": {"base": ' + b"9" * 5000 + b"}}",
        b'{"type": "data.sandbox.fetch_rates", "payload": {"base": "\xff\xfe"}}',
        b'{"type": "data.sandbox.fetch_rates", "payload": {"base": "\xed\xa0\x80"}}',
        b'{"type": "data.sandbox.fetch_rates", "payload": {"base": NaN}}',
        b'{"type": "data.sandbox.fetch_rates", "payload": {"base": 1e999}}',
        b'{"type": "data.sandbox.fetch_rates", "payload": ' + b'{"a":' * 40 + b"1" + b"}" * 41,
    ],
    ids=["deep", "5000-digits", "invalid-utf8", "encoded-surrogate", "nan", "inf", "depth-40"],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch", "/v1/jobs/replay"])
def test_a_body_that_is_not_parseable_json_is_400_malformed_json(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, raw: bytes, path: str
) -> None:
    # When an unparseable body is sent as JSON
    headers = {**auth(tenant_key), "Content-Type": "application/json"}
    response = client.post(path, content=raw, headers=headers)
    # Then it is 400 malformed_json (as the README promises) and nothing is stored
    error_of(response, 400, "malformed_json")
    assert job_rows(settings) == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json", None]
)
def test_a_json_body_sent_as_another_media_type_is_415(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, content_type: str | None
) -> None:
    # When a valid JSON body goes out labelled as something else (or not labelled at all)
    headers = auth(tenant_key)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post("/v1/jobs", content=json.dumps(rates_job()).encode(), headers=headers)
    # Then it is 415 and nothing is stored
    error_of(response, 415, "unsupported_media_type")
    assert job_rows(settings) == []


def test_a_json_body_with_a_charset_is_accepted(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # When a job is sent as application/json; charset=utf-8
    headers = {**auth(tenant_key), "Content-Type": "application/json; charset=utf-8"}
    response = client.post("/v1/jobs", content=json.dumps(rates_job()).encode(), headers=headers)
    # Then it is accepted
    assert response.status_code == 202, response.text
    assert len(job_rows(settings)) == 1


def provider_events(settings: Settings) -> list[ProviderEvent]:
    """Every stored provider event."""
    with get_database(settings).session() as session:
        return list(session.scalars(select(ProviderEvent)))


@pytest.mark.parametrize("raw", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000])
def test_a_webhook_body_nested_thousands_deep_is_400_malformed_json(
    client: TestClient, settings: Settings, raw: bytes
) -> None:
    # When an unsigned Adyen body and a validly signed Stripe body nest thousands deep
    adyen = client.post(
        "/v1/providers/adyen/webhooks", content=raw, headers={"Content-Type": "application/json"}
    )
    secret = settings.stripe_webhook_secret.get_secret_value()
    signature = stripe_signature(raw, secret, int(time.time()))
    stripe = client.post(
        "/v1/providers/stripe/webhooks",
        content=raw,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    # Then both are 400 malformed_json and nothing is stored
    error_of(adyen, 400, "malformed_json")
    error_of(stripe, 400, "malformed_json")
    assert provider_events(settings) == []


def test_a_signed_stripe_event_with_a_nul_is_refused_and_not_stored(
    client: TestClient, settings: Settings
) -> None:
    # Given a validly signed Stripe event whose object holds a NUL
    event = {
        "id": "evt_nul",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "description": NUL}},
    }
    raw = json.dumps(event).encode()
    secret = settings.stripe_webhook_secret.get_secret_value()
    signature = stripe_signature(raw, secret, int(time.time()))
    # When it is delivered
    response = client.post(
        "/v1/providers/stripe/webhooks",
        content=raw,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    # Then it is a 400 on both databases and nothing is stored
    error_of(response, 400, "malformed_event")
    assert provider_events(settings) == []
