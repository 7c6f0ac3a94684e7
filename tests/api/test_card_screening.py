"""Card data and keys are refused wherever a client puts them, and no error echoes them back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from config.settings import Settings
from integrations.payments.signing import stripe_signature
from store.db import get_database
from store.keys import IssuedKey
from store.models import AuditEvent, ProviderEvent
from tests.api.conftest import auth, error_of, job_rows

PAN = "4000056655665556"
SPACED_PAN = "4242 4242 4242 4242"
LIVE_KEY = "sk_live_51HabcdefghIJK"
CHARGE = "payments.sandbox.charge"


def charge(**payload: Any) -> dict[str, Any]:
    return {
        "type": CHARGE,
        "payload": {"amount": 1999, "currency": "eur", "payment_method": "pm_card_visa"} | payload,
    }


@pytest.mark.parametrize(
    ("body", "loc", "code"),
    [
        (charge(description=f"order for card {SPACED_PAN}"), ["body", "payload", "description"],
         "card_data_refused"),
        (charge(description=f"card {PAN} cvc 737"), ["body", "payload", "description"],
         "card_data_refused"),
        (charge(description="cvc: 737"), ["body", "payload", "description"], "card_data_refused"),
        (charge(description=f"use {LIVE_KEY}"), ["body", "payload", "description"],
         "secret_refused"),
    ],
)  # fmt: skip
def test_card_data_in_any_stored_field_is_refused_naming_the_field_only(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    body: dict[str, Any],
    loc: list[str],
    code: str,
) -> None:
    # Given a valid submit carrying card data or a key in a free-text field
    # When it is submitted
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))
    # Then 422 names where, not what, and nothing is written
    error = error_of(response, 422, code)
    assert error["details"]["loc"] == loc
    for secret in (PAN, SPACED_PAN, "737", LIVE_KEY):
        assert secret not in response.text
    assert job_rows(settings) == []


def test_a_card_number_in_the_idempotency_key_is_refused(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an Idempotency-Key that is a card number
    headers = {**auth(tenant_key), "Idempotency-Key": f"order {PAN}"}
    # When a valid job is submitted with it
    response = client.post("/v1/jobs", json=charge(), headers=headers)
    # Then it is refused naming the header, and nothing is written
    error = error_of(response, 422, "card_data_refused")
    assert error["details"]["loc"] == ["header", "Idempotency-Key"]
    assert PAN not in response.text and job_rows(settings) == []


def test_an_idempotency_key_holding_a_uuid_and_digits_is_accepted(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a key that holds a Luhn-valid digit run inside a key token (negative control)
    key = f"cv-{uuid.uuid4()}-4111111111111111-charge"
    # When a job is submitted with it
    response = client.post(
        "/v1/jobs", json=charge(), headers={**auth(tenant_key), "Idempotency-Key": key}
    )
    # Then it is accepted and stored whole
    assert response.status_code == 202, response.text
    assert [row.idempotency_key for row in job_rows(settings)] == [key]


def test_a_batch_names_the_index_of_the_job_carrying_card_data(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a batch whose second job carries a PAN in its description
    body = {"jobs": [charge(), charge(description=PAN)]}
    # When it is submitted
    response = client.post("/v1/jobs/batch", json=body, headers=auth(tenant_key))
    # Then the whole batch is refused, naming that job's field
    error = error_of(response, 422, "card_data_refused")
    assert error["details"]["loc"] == ["body", "jobs", 1, "payload", "description"]
    assert PAN not in response.text and job_rows(settings) == []


def test_a_replay_filter_holding_a_card_number_is_refused_and_not_audited(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a replay filter with a PAN as its type
    body = {"filter": {"type": PAN}, "dry_run": False}
    # When it is posted
    response = client.post("/v1/jobs/replay", json=body, headers=auth(tenant_key))
    # Then 422, and no audit row holds it
    error_of(response, 422, "card_data_refused")
    with get_database(settings).session() as session:
        details = [json.dumps(e.details) for e in session.scalars(select(AuditEvent))]
    assert not any(PAN in d for d in details)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/jobs/{PAN}", None),
        ("POST", f"/v1/jobs/{PAN}/cancel", None),
        ("POST", "/v1/jobs", {"type": f"card {PAN}", "payload": {}}),
        ("POST", "/v1/jobs", charge(currency=f"x{SPACED_PAN}")),
        ("POST", "/v1/jobs", {"type": "payments.sandbox.refund", "payload": {"reference": PAN}}),
    ],
)
def test_no_error_echoes_a_card_number(
    client: TestClient, tenant_key: IssuedKey, method: str, path: str, body: Any
) -> None:
    # Given requests whose error answers quote an input (404 id, unknown type, payload errors)
    # When they are sent
    response = client.request(method, path, json=body, headers=auth(tenant_key))
    # Then the answer is an error that never carries the number
    assert 400 <= response.status_code < 500, response.text
    assert PAN not in response.text and SPACED_PAN not in response.text
    assert PAN not in response.text.replace(" ", "")


@pytest.fixture
def events_cleared(settings: Settings) -> Iterator[None]:
    yield
    with get_database(settings).session() as session:
        session.execute(delete(ProviderEvent))


@pytest.mark.usefixtures("events_cleared")
def test_a_signed_webhook_is_stored_redacted(client: TestClient, settings: Settings) -> None:
    # Given a validly signed Stripe event carrying a card number, a CVC and a client secret
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_1",
                "description": f"card {PAN}",
                "card": {"number": PAN, "cvc": "737", "exp_month": 1},
                "client_secret": "pi_1_secret_abc",
                "metadata": {"conveyor_key": "cv-8030b5ce-1234-4a5b-9c8d-4111111111111111-charge"},
            }
        },
    }
    body = json.dumps(event).encode()
    header = stripe_signature(
        body, settings.stripe_webhook_secret.get_secret_value(), int(time.time())
    )
    # When it is posted
    response = client.post(
        "/v1/providers/stripe/webhooks",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    # Then it is accepted and the stored payload has none of it, but keeps the ids
    assert response.status_code == 200, response.text
    with get_database(settings).session() as session:
        [row] = session.scalars(select(ProviderEvent)).all()
    stored = json.dumps(row.payload)
    for secret in (PAN, '"737"', "pi_1_secret_abc"):
        assert secret not in stored
    assert "cv-8030b5ce-1234-4a5b-9c8d-4111111111111111-charge" in stored and '"pi_1"' in stored
