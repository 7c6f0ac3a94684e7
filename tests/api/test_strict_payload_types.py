"""Payload fields take the JSON type they name: money is a JSON integer, a day a date string.

Trial case: `{"amount": true}` was accepted and charged 1 minor unit, `"12"` charged 12
(pydantic's lax mode coerced them). Every payment job type's money field, at submit and in a
batch; a valid integer is the negative control. The data job schemas' one lax field of the
kind, `data.fx.sync_rates`'s `day`, read a number as a Unix timestamp.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from store.keys import IssuedKey
from tests.api.conftest import auth, error_of, job_rows

LOOSE = [True, False, "12", 12.0, "1e3", [12], {"value": 12}]
REFERENCE = {"stripe": "pi_3Mtw0aLkdIwHu7ix28a3tqPa", "adyen": "QFQTPCQ8HXSKGK82"}


def _payload(job_type: str, amount: object) -> dict[str, Any]:
    _, provider, operation = job_type.split(".")
    if operation in ("charge", "authorize"):
        token = "stored_card_visa" if provider == "adyen" else "pm_card_visa"
        return {"amount": amount, "currency": "eur", "payment_method": token}
    return {"reference": REFERENCE[provider], "amount": amount, "currency": "eur"}


MONEY_TYPES = [
    *(f"payments.{p}.{op}" for p in ("stripe", "adyen") for op in ("charge", "authorize")),
    *(f"payments.{p}.{op}" for p in ("stripe", "adyen") for op in ("capture", "refund")),
    "payments.sandbox.charge",
]


@pytest.mark.parametrize("amount", LOOSE, ids=repr)
@pytest.mark.parametrize("job_type", MONEY_TYPES)
def test_a_money_field_that_is_not_a_json_integer_is_refused_naming_the_field(
    settings: Settings, client: TestClient, tenant_key: IssuedKey, job_type: str, amount: object
) -> None:
    # When a payment job is submitted with an amount that only coerces to an integer
    body = {"type": job_type, "payload": _payload(job_type, amount)}
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then 422 invalid_payload naming payload.amount, and nothing is stored
    error = error_of(response, 422, "invalid_payload")
    assert ["body", "payload", "amount"] in [d["loc"] for d in error["details"]], error
    assert job_rows(settings, tenant_key.tenant_id) == []


def test_a_batch_with_a_loose_amount_is_refused_whole(
    settings: Settings, client: TestClient, tenant_key: IssuedKey
) -> None:
    # When a batch holds one good charge and one whose amount is `true`
    good = {"type": "payments.stripe.charge", "payload": _payload("payments.stripe.charge", 12)}
    bad = {"type": "payments.stripe.charge", "payload": _payload("payments.stripe.charge", True)}
    response = client.post("/v1/jobs/batch", json={"jobs": [good, bad]}, headers=auth(tenant_key))

    # Then 422 naming the second job's amount, and nothing is stored
    error = error_of(response, 422, "invalid_payload")
    assert any(d["loc"][-1] == "amount" and 1 in d["loc"] for d in error["details"]), error
    assert job_rows(settings, tenant_key.tenant_id) == []


def test_an_integer_amount_is_accepted_as_written(
    settings: Settings, client: TestClient, tenant_key: IssuedKey
) -> None:
    # When a charge of 12 is submitted as a JSON integer (the negative control)
    body = {"type": "payments.stripe.charge", "payload": _payload("payments.stripe.charge", 12)}
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then it is accepted with exactly that amount
    assert response.status_code == 202, response.text
    assert [j.payload["amount"] for j in job_rows(settings, tenant_key.tenant_id)] == [12]


@pytest.mark.parametrize("day", [0, 1700006400, 1700006400.0], ids=repr)
def test_a_day_written_as_a_number_is_refused(
    settings: Settings, client: TestClient, tenant_key: IssuedKey, day: object
) -> None:
    # When an FX sync is asked for a day given as a number (a Unix timestamp to pydantic)
    body = {"type": "data.fx.sync_rates", "payload": {"day": day}}
    response = client.post("/v1/jobs", json=body, headers=auth(tenant_key))

    # Then 422 naming payload.day, and nothing is stored; a date string is accepted
    error = error_of(response, 422, "invalid_payload")
    assert ["body", "payload", "day"] in [d["loc"] for d in error["details"]], error
    assert job_rows(settings, tenant_key.tenant_id) == []
    good = {"type": "data.fx.sync_rates", "payload": {"day": "2026-11-27"}}
    assert client.post("/v1/jobs", json=good, headers=auth(tenant_key)).status_code == 202
