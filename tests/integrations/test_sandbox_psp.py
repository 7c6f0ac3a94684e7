"""The sandbox PSP on the wire: what each provider API answers, beyond the adapters' contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from integrations.errors import PermanentError, TransientError, UnknownOutcome
from integrations.http import HttpClient
from integrations.payments.adyen import adyen_key
from integrations.payments.base import PaymentStatus
from integrations.payments.stripe import StripePayments
from tests.integrations.sandbox_support import (
    ADYEN_KEY,
    MERCHANT_ACCOUNT,
    STRIPE_VERSION,
    adyen_psp,
    new_key,
    stripe_psp,
)
from tests.integrations.test_sandbox_server import (
    API_KEY,
    TIMEOUT_S,
    Sandbox,
    error_of,
    start_sandbox,
    stop_sandbox,
)


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox") / "stderr.log")
    yield sandbox
    stop_sandbox(sandbox.proc)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    sandbox_process.admin("/_sandbox/reset")
    return sandbox_process


@pytest.fixture(scope="module")
def http() -> Iterator[HttpClient]:
    client = HttpClient(connect_timeout=2.0, read_timeout=5.0)
    yield client
    client.close()


def stripe_post(
    sandbox: Sandbox, path: str, form: dict[str, str], key: str | None, **headers: str
) -> requests.Response:
    sent = {"Authorization": f"Bearer {API_KEY}"} | {
        name.replace("_", "-"): value for name, value in headers.items()
    }
    if key is not None:
        sent["Idempotency-Key"] = key
    return requests.post(sandbox.url + path, data=form, headers=sent, timeout=TIMEOUT_S)


def intent_form(**overrides: str) -> dict[str, str]:
    return {
        "amount": "1000",
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "metadata[conveyor_key]": "k",
    } | overrides


def adyen_post(
    sandbox: Sandbox, path: str, body: dict[str, Any], key: str | None
) -> requests.Response:
    headers = {"X-API-Key": ADYEN_KEY} | ({"Idempotency-Key": key} if key else {})
    return requests.post(sandbox.url + path, json=body, headers=headers, timeout=TIMEOUT_S)


def payment_body(**overrides: Any) -> dict[str, Any]:
    return {
        "amount": {"value": 1000, "currency": "EUR"},
        "reference": "order-1",
        "merchantAccount": MERCHANT_ACCOUNT,
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": "stored_card_1"},
    } | overrides


# --- Stripe -----------------------------------------------------------------------------


def test_a_payment_intent_is_created_form_encoded_and_replayed_under_its_key(
    sandbox: Sandbox,
) -> None:
    # Given
    key = new_key()

    # When: created and confirmed, then the same request again
    first = stripe_post(sandbox, "/v1/payment_intents", intent_form(), key)
    again = stripe_post(sandbox, "/v1/payment_intents", intent_form(), key)

    # Then: a succeeded PaymentIntent whose id follows from the key, replayed
    assert first.status_code == again.status_code == 200
    intent = first.json()
    assert intent["id"].startswith("pi_") and intent["object"] == "payment_intent"
    assert (intent["status"], intent["amount_received"], intent["metadata"]) == (
        "succeeded",
        1000,
        {"conveyor_key": "k"},
    )
    assert again.json() == intent and again.headers["Idempotent-Replayed"] == "true"
    assert sandbox.stats()["effects"] == {key: 1}


def test_stripe_refuses_an_unknown_parameter_a_missing_key_and_a_wrong_api_key(
    sandbox: Sandbox,
) -> None:
    unknown = stripe_post(sandbox, "/v1/payment_intents", intent_form(colour="red"), new_key())
    keyless = stripe_post(sandbox, "/v1/payment_intents", intent_form(), None)
    wrong = requests.post(
        sandbox.url + "/v1/payment_intents",
        data=intent_form(),
        headers={"Authorization": "Bearer sk_wrong", "Idempotency-Key": new_key()},
        timeout=TIMEOUT_S,
    )

    assert (unknown.status_code, error_of(unknown)["code"]) == (400, "parameter_unknown")
    assert (keyless.status_code, error_of(keyless)["code"]) == (400, "idempotency_key_missing")
    assert (wrong.status_code, error_of(wrong)["type"]) == (401, "authentication_error")
    assert sandbox.stats()["effects"] == {}


def test_a_declined_card_is_a_402_carrying_the_payment_intent(sandbox: Sandbox) -> None:
    form = intent_form(payment_method="pm_card_chargeDeclined")

    response = stripe_post(sandbox, "/v1/payment_intents", form, new_key())

    assert response.status_code == 402
    error = error_of(response)
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert sandbox.stats()["effects"] == {}


def test_an_injected_500_is_saved_under_the_key_and_replayed_as_an_unknown_outcome(
    sandbox: Sandbox, http: HttpClient
) -> None:
    # Given: the API fails after execution began (a 500), which Stripe saves under the key
    psp = stripe_psp(sandbox, http)
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 500}]})
    key = new_key()

    # When: the first try, then the retry with the same key
    with pytest.raises(TransientError):
        psp.provider.charge(psp.charge_request(), key)
    with pytest.raises(UnknownOutcome) as replayed:
        psp.provider.charge(psp.charge_request(), key)

    # Then: the retry replays the 500, so it says "reconcile", not "try again"
    assert replayed.value.code == "replayed_server_error"
    assert sandbox.stats()["effects"] == {}


def test_an_injected_503_is_not_saved_so_the_retry_performs(
    sandbox: Sandbox, http: HttpClient
) -> None:
    psp = stripe_psp(sandbox, http)
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 503}]})
    key = new_key()

    with pytest.raises(TransientError):
        psp.provider.charge(psp.charge_request(), key)
    result = psp.provider.charge(psp.charge_request(), key)

    assert result.status is PaymentStatus.CAPTURED
    assert sandbox.stats()["effects"] == {key: 1}


def test_stripe_should_retry_false_makes_a_503_permanent(
    sandbox: Sandbox, http: HttpClient
) -> None:
    psp = stripe_psp(sandbox, http)
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 503, "should_retry": False}]})

    with pytest.raises(PermanentError):
        psp.provider.charge(psp.charge_request(), new_key())


def test_search_reads_only_the_metadata_form_and_unknown_intents_are_404(
    sandbox: Sandbox, http: HttpClient
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    bad = requests.get(
        sandbox.url + "/v1/payment_intents/search",
        params={"query": "amount>100"},
        headers=headers,
        timeout=TIMEOUT_S,
    )
    missing = requests.get(
        sandbox.url + "/v1/payment_intents/pi_nope", headers=headers, timeout=TIMEOUT_S
    )
    provider = StripePayments(sandbox.url, API_KEY, http, stripe_version=STRIPE_VERSION)

    assert (bad.status_code, error_of(bad)["param"]) == (400, "query")
    assert (missing.status_code, error_of(missing)["code"]) == (404, "resource_missing")
    assert provider.find_by_key("it's \\ odd") is None


def test_paths_with_parameters_route_by_method_and_count_by_pattern(sandbox: Sandbox) -> None:
    # Given: a PaymentIntent, captured through its parameterised path
    form = intent_form(capture_method="manual")
    intent = stripe_post(sandbox, "/v1/payment_intents", form, new_key()).json()
    path = f"/v1/payment_intents/{intent['id']}/capture"
    captured = stripe_post(sandbox, path, {"amount_to_capture": "400"}, new_key())

    # When: a method the path does not take
    wrong = requests.get(sandbox.url + "/v1/refunds", timeout=TIMEOUT_S)

    # Then
    assert (captured.status_code, captured.json()["amount_received"]) == (200, 400)
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    by_path = sandbox.stats()["by_path"]
    assert by_path == {"/v1/payment_intents": 1, "/v1/payment_intents/{id}/capture": 1}


# --- Adyen ------------------------------------------------------------------------------


def test_an_adyen_refusal_is_http_200_and_a_missing_api_key_401(sandbox: Sandbox) -> None:
    refused = adyen_post(
        sandbox,
        "/adyen/v71/payments",
        payment_body(paymentMethod={"type": "scheme", "storedPaymentMethodId": "refused_card"}),
        new_key(),
    )
    unauthorised = requests.post(
        sandbox.url + "/adyen/v71/payments", json=payment_body(), timeout=TIMEOUT_S
    )

    assert refused.status_code == 200
    assert refused.json() | {"pspReference": None} == {
        "pspReference": None,
        "resultCode": "Refused",
        "amount": {"currency": "EUR", "value": 1000},
        "merchantReference": "order-1",
        "refusalReason": "Refused",
        "refusalReasonCode": "2",
    }
    assert unauthorised.status_code == 401
    assert unauthorised.json()["errorType"] == "security"


def test_adyen_refuses_a_long_key_a_lower_case_currency_and_an_over_refund(
    sandbox: Sandbox,
) -> None:
    # Given: a captured payment
    body = payment_body(captureDelayHours=0)
    psp_reference = adyen_post(sandbox, "/adyen/v71/payments", body, new_key()).json()[
        "pspReference"
    ]

    # When
    long_key = adyen_post(sandbox, "/adyen/v71/payments", payment_body(), "k" * 65)
    lower = adyen_post(
        sandbox, "/adyen/v71/payments", payment_body(amount={"value": 5, "currency": "eur"}), None
    )
    refund = {"merchantAccount": MERCHANT_ACCOUNT, "amount": {"value": 1001, "currency": "EUR"}}
    over = adyen_post(sandbox, f"/adyen/v71/payments/{psp_reference}/refunds", refund, new_key())

    # Then: Adyen-shaped errors
    assert long_key.status_code == 422
    assert (lower.status_code, lower.json()["errorCode"]) == (422, "138")
    assert over.json() | {"message": ""} == {
        "status": 422,
        "errorCode": "137",
        "message": "",
        "errorType": "validation",
    }


def test_a_modification_is_received_with_its_own_psp_reference(sandbox: Sandbox) -> None:
    body = payment_body()
    authorised = adyen_post(sandbox, "/adyen/v71/payments", body, new_key()).json()
    path = f"/adyen/v71/payments/{authorised['pspReference']}/captures"
    capture = {"merchantAccount": MERCHANT_ACCOUNT, "amount": {"value": 600, "currency": "EUR"}}

    response = adyen_post(sandbox, path, capture, new_key())

    assert response.status_code == 201
    answer = response.json()
    assert answer["status"] == "received"
    assert answer["paymentPspReference"] == authorised["pspReference"]
    assert answer["pspReference"] != authorised["pspReference"]
    assert answer["amount"] == {"currency": "EUR", "value": 600}


def test_a_key_longer_than_adyen_takes_is_hashed_the_same_way_on_every_retry(
    sandbox: Sandbox, http: HttpClient
) -> None:
    psp = adyen_psp(sandbox, http)
    key = "k" * 100

    first = psp.provider.charge(psp.charge_request(), key)
    again = psp.provider.charge(psp.charge_request(), key)

    assert len(adyen_key(key)) == 64 and adyen_key(key) == adyen_key(key)
    assert again.reference == first.reference
    assert sandbox.stats()["effects"] == {adyen_key(key): 1}


def test_without_a_key_adyen_performs_every_request(sandbox: Sandbox) -> None:
    for _ in range(2):
        response = adyen_post(sandbox, "/adyen/v71/payments", payment_body(), None)
        assert response.status_code == 200

    assert len(sandbox.stats()["effects"]) == 2


# --- admin ------------------------------------------------------------------------------


def test_the_payment_book_lists_payments_and_reset_empties_it(sandbox: Sandbox) -> None:
    # Given: one payment per provider, one of them made by the admin endpoint
    stripe_post(sandbox, "/v1/payment_intents", intent_form(), new_key())
    made = requests.post(
        sandbox.url + "/_sandbox/payments",
        json={"provider": "adyen", "amount": 700, "currency": "EUR"},
        timeout=TIMEOUT_S,
    ).json()

    # When
    book = requests.get(sandbox.url + "/_sandbox/payments", timeout=TIMEOUT_S).json()["payments"]

    # Then
    assert sorted(p["provider"] for p in book.values()) == ["adyen", "stripe"]
    assert book[made["pspReference"]] | {"metadata": {}} == {
        "provider": "adyen",
        "status": "captured",
        "amount": 700,
        "currency": "eur",
        "captured": 700,
        "refunded": 0,
        "metadata": {},
    }
    sandbox.admin("/_sandbox/reset")
    assert requests.get(sandbox.url + "/_sandbox/payments", timeout=TIMEOUT_S).json() == {
        "payments": {}
    }


@pytest.mark.parametrize(
    "retention", [{"paypal": 1.0}, {"stripe": 0}, {"stripe": True}, {"adyen": "1"}, [1.0]]
)
def test_an_invalid_key_retention_is_refused(sandbox: Sandbox, retention: object) -> None:
    response = requests.post(
        sandbox.url + "/_sandbox/faults", json={"key_retention_s": retention}, timeout=TIMEOUT_S
    )

    assert response.status_code == 400
    assert error_of(response)["param"] == "key_retention_s"


def test_key_retention_is_reported_and_reset_restores_the_defaults(sandbox: Sandbox) -> None:
    changed = sandbox.admin("/_sandbox/faults", {"key_retention_s": {"stripe": 2.5}})
    sandbox.admin("/_sandbox/reset")
    restored = sandbox.admin("/_sandbox/faults", {})

    assert changed["key_retention_s"] == {"stripe": 2.5, "adyen": 604800.0}
    assert restored["key_retention_s"] == {"stripe": 86400.0, "adyen": 604800.0}


def test_faults_on_adyen_paths_answer_in_adyens_shape_and_hint_header(
    sandbox: Sandbox, http: HttpClient
) -> None:
    # Given: the next Adyen request fails with a 503 that says "retry later"
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 503, "should_retry": True}]})

    # When
    response = adyen_post(sandbox, "/adyen/v71/payments", payment_body(), new_key())

    # Then: Adyen's error body and its `transient-error` header, and the adapter retries later
    assert response.status_code == 503
    assert response.headers["transient-error"] == "true"
    assert response.json() | {"message": ""} == {
        "status": 503,
        "errorCode": "00_503",
        "message": "",
        "errorType": "internal",
    }
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 422, "should_retry": True}]})
    psp = adyen_psp(sandbox, http)
    with pytest.raises(TransientError):
        psp.provider.charge(psp.charge_request(), new_key())
    assert sandbox.stats()["effects"] == {}
