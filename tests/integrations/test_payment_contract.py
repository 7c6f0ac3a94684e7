"""The payment contract, the same scenarios against each adapter and the real sandbox PSP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from integrations.errors import PermanentError, TransientError, UnknownOutcome
from integrations.http import HttpClient
from integrations.payments.base import (
    CaptureRequest,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    VoidRequest,
)
from tests.integrations.sandbox_support import (
    Psp,
    admin_payment,
    adyen_psp,
    in_flight,
    new_key,
    stripe_psp,
)
from tests.integrations.test_sandbox_server import API_KEY, Sandbox, start_sandbox, stop_sandbox

BUILDERS = {"stripe": stripe_psp, "adyen": adyen_psp}
SLOW_MS = 600


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox") / "stderr.log")
    yield sandbox
    stop_sandbox(sandbox.proc)


@pytest.fixture(scope="module")
def http() -> Iterator[HttpClient]:
    client = HttpClient(connect_timeout=2.0, read_timeout=5.0)
    yield client
    client.close()


@pytest.fixture(params=sorted(BUILDERS))
def psp(request: pytest.FixtureRequest, sandbox_process: Sandbox, http: HttpClient) -> Psp:
    """Each adapter in turn, against a sandbox wiped clean for the test."""
    sandbox_process.admin("/_sandbox/reset")
    return BUILDERS[request.param](sandbox_process, http)


def answered(psp: Psp, settled: PaymentStatus) -> PaymentStatus:
    """What a capture, refund or void answers at once: Adyen's are `received`, so PENDING."""
    return PaymentStatus.PENDING if psp.name == "adyen" else settled


def payment_now(psp: Psp, result: PaymentResult) -> PaymentResult:
    """The payment as the provider holds it after an operation (the sandbox can look it up)."""
    found = psp.provider.retrieve(result.reference)
    assert found is not None
    return found


def charged(psp: Psp, amount: int = 1000) -> PaymentResult:
    result = psp.provider.charge(psp.charge_request(amount), new_key())
    assert result.status is PaymentStatus.CAPTURED
    return result


def test_a_charge_captures_the_amount_and_reports_the_currency_in_lower_case(psp: Psp) -> None:
    # Given
    key = new_key()

    # When
    result = psp.provider.charge(psp.charge_request(1250), key)

    # Then: captured in full, and exactly one effect under the key
    assert result.status is PaymentStatus.CAPTURED
    assert (result.amount, result.currency, result.amount_captured) == (1250, "eur", 1250)
    assert result.reference and result.decline is None
    assert result.idempotency_key == key
    assert psp.stats()["effects"] == {key: 1}


def test_a_decline_is_a_result_with_its_codes_and_moves_no_money(psp: Psp) -> None:
    # When
    result = psp.provider.charge(psp.charge_request(token=psp.declining_token), new_key())

    # Then
    assert result.status is PaymentStatus.DECLINED and result.declined
    assert result.decline is not None
    assert result.decline.code == "card_declined"
    assert result.decline.decline_code == psp.decline_code
    assert result.amount_captured == 0
    assert psp.stats()["effects"] == {}


@pytest.mark.parametrize(("capture_amount", "captured"), [(None, 1000), (600, 600)])
def test_an_authorization_is_captured_in_full_or_in_part(
    psp: Psp, capture_amount: int | None, captured: int
) -> None:
    # Given: funds held
    held = psp.provider.authorize(psp.charge_request(1000), new_key())
    assert (held.status, held.amount_captured) == (PaymentStatus.AUTHORIZED, 0)

    # When
    capture_key = new_key()
    result = psp.provider.capture(
        CaptureRequest(reference=held.reference, amount=capture_amount), capture_key
    )

    # Then: captured (Adyen: received, then captured)
    assert result.status is answered(psp, PaymentStatus.CAPTURED)
    now = payment_now(psp, result)
    assert now.status is PaymentStatus.CAPTURED
    assert (now.reference, now.amount_captured) == (held.reference, captured)
    assert psp.stats()["effects"][capture_key] == 1


def test_a_void_cancels_an_authorization(psp: Psp) -> None:
    # Given
    held = psp.provider.authorize(psp.charge_request(), new_key())

    # When
    result = psp.provider.void(VoidRequest(reference=held.reference), new_key())

    # Then
    assert result.status is answered(psp, PaymentStatus.VOIDED)
    now = payment_now(psp, result)
    assert now.status is PaymentStatus.VOIDED
    assert (now.reference, now.amount_captured) == (held.reference, 0)


def test_a_partial_then_a_final_refund_add_up(psp: Psp) -> None:
    # Given
    payment = charged(psp, 1000)

    # When: 300, then the 700 left
    first = psp.provider.refund(RefundRequest(reference=payment.reference, amount=300), new_key())
    second = psp.provider.refund(RefundRequest(reference=payment.reference, amount=700), new_key())

    # Then: each result gives the payment's state after it (part, then all refunded) and
    # names the refund's own amount; the payment's totals add up
    assert first.status is answered(psp, PaymentStatus.PARTIALLY_REFUNDED)
    assert second.status is answered(psp, PaymentStatus.REFUNDED)
    assert (first.operation_amount, second.operation_amount) == (300, 700)
    now = payment_now(psp, second)
    assert (now.status, now.amount_refunded) == (PaymentStatus.REFUNDED, 1000)
    assert first.operation_reference and second.operation_reference
    assert len({first.operation_reference, second.operation_reference, payment.reference}) == 3


def test_a_refund_without_an_amount_refunds_the_whole_payment(psp: Psp) -> None:
    payment = charged(psp, 800)

    result = psp.provider.refund(RefundRequest(reference=payment.reference), new_key())

    assert result.status is answered(psp, PaymentStatus.REFUNDED)
    now = payment_now(psp, result)
    assert (now.status, now.amount_refunded) == (PaymentStatus.REFUNDED, 800)


def test_a_refund_above_what_is_left_is_a_permanent_error_and_no_effect(psp: Psp) -> None:
    # Given
    payment = charged(psp, 1000)
    psp.provider.refund(RefundRequest(reference=payment.reference, amount=400), new_key())
    key = new_key()

    # When / Then
    with pytest.raises(PermanentError):
        psp.provider.refund(RefundRequest(reference=payment.reference, amount=601), key)
    assert key not in psp.stats()["effects"]


def test_the_same_key_and_request_twice_is_one_payment(psp: Psp) -> None:
    # Given
    key = new_key()
    first = psp.provider.charge(psp.charge_request(), key)

    # When
    again = psp.provider.charge(psp.charge_request(), key)

    # Then: the saved answer, one effect, two requests
    assert again.reference == first.reference
    assert again.status is PaymentStatus.CAPTURED
    assert psp.stats()["effects"] == {key: 1}
    assert psp.stats()["keys_seen"] == {key: 2}


def test_the_same_key_with_other_parameters_is_refused_as_reused(psp: Psp) -> None:
    # Given
    key = new_key()
    psp.provider.charge(psp.charge_request(1000), key)

    # When / Then
    with pytest.raises(PermanentError) as raised:
        psp.provider.charge(psp.charge_request(2000), key)
    assert raised.value.code == "idempotency_key_reused"
    assert psp.stats()["effects"] == {key: 1}


def test_a_request_while_the_same_key_is_in_flight_is_transient(psp: Psp) -> None:
    # Given: the provider takes 600 ms over the first request
    psp.faults({"script": [], "latency_ms": SLOW_MS})
    key = new_key()
    thread, results = in_flight(
        lambda: psp.provider.charge(psp.charge_request(), key), psp.sandbox, key
    )

    # When: the same key again meanwhile
    with pytest.raises(TransientError) as raised:
        psp.provider.charge(psp.charge_request(), key)
    thread.join(5)

    # Then: retry later with the same key; the first completes, once
    assert raised.value.code == "idempotency_key_in_use"
    assert results[0].status is PaymentStatus.CAPTURED
    assert psp.stats()["effects"] == {key: 1}


def test_a_lost_answer_is_an_unknown_outcome_and_the_retry_gets_the_saved_one(psp: Psp) -> None:
    # Given: the next request is performed, then its connection dropped
    psp.faults({"script": [{"reset": "after"}]})
    key = new_key()

    # When
    with pytest.raises(UnknownOutcome):
        psp.provider.charge(psp.charge_request(), key)

    # Then: money moved although we saw nothing; the retry tells us what happened
    assert psp.stats()["effects"] == {key: 1}
    retried = psp.provider.charge(psp.charge_request(), key)
    assert retried.status is PaymentStatus.CAPTURED
    assert psp.stats()["effects"] == {key: 1}
    found = psp.provider.retrieve(retried.reference)
    assert found is not None and found.status is PaymentStatus.CAPTURED


def test_retrieve_matches_the_payment_after_a_charge_and_a_refund(psp: Psp) -> None:
    # Given
    payment = charged(psp, 1000)
    after_charge = psp.provider.retrieve(payment.reference)
    psp.provider.refund(RefundRequest(reference=payment.reference, amount=250), new_key())

    # When
    after_refund = psp.provider.retrieve(payment.reference)

    # Then
    assert after_charge is not None and after_refund is not None
    assert (after_charge.status, after_charge.amount_captured) == (PaymentStatus.CAPTURED, 1000)
    assert after_refund.status is PaymentStatus.PARTIALLY_REFUNDED
    assert (after_refund.reference, after_refund.amount, after_refund.currency) == (
        payment.reference,
        1000,
        "eur",
    )
    assert (after_refund.amount_captured, after_refund.amount_refunded) == (1000, 250)
    assert psp.provider.retrieve("no_such_payment") is None


def test_find_by_key_finds_a_payment_the_database_never_recorded(psp: Psp) -> None:
    # Given: a payment made under a key whose answer Conveyor never stored
    key = new_key()
    made = admin_payment(psp.sandbox, psp.name, metadata={"conveyor_key": key})

    # When
    found = psp.provider.find_by_key(key)

    # Then: Stripe searches metadata; Adyen cannot search at all
    if psp.name == "adyen":
        assert found is None
        return
    assert found is not None
    assert (found.reference, found.status, found.amount) == (
        made["id"],
        PaymentStatus.CAPTURED,
        500,
    )
    assert found.idempotency_key == key
    assert psp.provider.find_by_key(new_key()) is None


def test_after_the_key_retention_the_same_key_makes_a_second_payment(psp: Psp) -> None:
    # Given: the provider forgets keys after 1 s, and a charge under a key
    psp.faults({"key_retention_s": {psp.name: 1.0}})
    key = new_key()
    first = psp.provider.charge(psp.charge_request(), key)

    # When: the same request after the key expired
    time.sleep(1.5)
    second = psp.provider.charge(psp.charge_request(), key)

    # Then: a second payment; why unknown outcomes past retention go to reconciliation
    assert second.reference != first.reference
    assert psp.stats()["effects"] == {key: 2}


def test_a_stripe_post_without_a_body_still_says_it_is_a_form(
    sandbox_process: Sandbox, http: HttpClient
) -> None:
    # Given an authorisation, and the sandbox refusing form POSTs that do not say so (as
    # Stripe's own mock server does)
    sandbox_process.admin("/_sandbox/reset")
    psp = stripe_psp(sandbox_process, http)
    held = psp.provider.authorize(psp.charge_request(), new_key())
    bare = requests.post(
        f"{sandbox_process.url}/v1/payment_intents/{held.reference}/cancel",
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": new_key()},
        timeout=5,
    )
    assert bare.status_code == 400 and bare.json()["error"]["code"] == "invalid_content_type"

    # When the adapter voids it: a POST with no parameters at all
    result = psp.provider.void(VoidRequest(reference=held.reference), new_key())

    # Then it was sent as a form, and the authorisation is cancelled
    assert result.status is PaymentStatus.VOIDED
