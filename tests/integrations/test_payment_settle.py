"""A pending modification settles by its own reference; a refund's result tells the payment.

Trial cases: Adyen's `settle` marked a pending refund or capture done because the payment had
*some* refund or capture (an earlier modification) (6); a Stripe refund's result said
`amount_captured: 0` of a payment captured at 1000 (5). Real adapters, real sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.http import HttpClient
from integrations.payments.base import (
    CaptureRequest,
    PaymentResult,
    PaymentStatus,
    PendingPayment,
    RefundRequest,
)
from tests.integrations.sandbox_support import Psp, adyen_psp, new_key, stripe_psp
from tests.integrations.test_sandbox_server import Sandbox, start_sandbox, stop_sandbox

# A pspReference Adyen has answered `received` for and not yet applied: the sandbox applies
# modifications at once, so one it has never seen stands for it.
NOT_YET_APPLIED = "ZZZZZZZZZZZZZZZZ"


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


@pytest.fixture
def adyen(sandbox_process: Sandbox, http: HttpClient) -> Psp:
    sandbox_process.admin("/_sandbox/reset")
    return adyen_psp(sandbox_process, http)


@pytest.fixture
def stripe(sandbox_process: Sandbox, http: HttpClient) -> Psp:
    sandbox_process.admin("/_sandbox/reset")
    return stripe_psp(sandbox_process, http)


def pending(operation: str, answer: PaymentResult, reference: str | None = None) -> PendingPayment:
    """What the job keeps while it awaits the provider, as `outcome_of` writes it."""
    return PendingPayment(
        operation,
        answer.reference,
        reference if reference is not None else answer.operation_reference,
        answer.operation_amount,
        answer.currency,
    )


def test_an_adyen_refund_is_not_settled_by_an_earlier_refund_of_the_same_payment(
    adyen: Psp,
) -> None:
    # Given a payment of 1000 with refund A (300) applied, and refund B (400) received only
    payment = adyen.provider.charge(adyen.charge_request(1000), new_key())
    first = adyen.provider.refund(RefundRequest(reference=payment.reference, amount=300), new_key())
    assert first.status is PaymentStatus.PENDING
    waiting = PendingPayment("refund", payment.reference, NOT_YET_APPLIED, 400, "eur")

    # When both are settled from the look-up (no webhook yet)
    settled_a = adyen.provider.settle(pending("refund", first), [])
    settled_b = adyen.provider.settle(waiting, [])

    # Then A is done with its own amount, and B is still unknown
    assert settled_a is not None and settled_a.status is PaymentStatus.REFUNDED
    assert (settled_a.operation_reference, settled_a.operation_amount) == (
        first.operation_reference,
        300,
    )
    assert settled_b is None


def test_two_adyen_refunds_of_one_payment_each_settle_with_their_own_amount(adyen: Psp) -> None:
    # Given a payment of 1000 refunded 300, then 700
    payment = adyen.provider.charge(adyen.charge_request(1000), new_key())
    first = adyen.provider.refund(RefundRequest(reference=payment.reference, amount=300), new_key())
    second = adyen.provider.refund(
        RefundRequest(reference=payment.reference, amount=700), new_key()
    )

    # When each is settled
    results = [adyen.provider.settle(pending("refund", r), []) for r in (first, second)]

    # Then each names its own modification and amount
    assert [(r.operation_reference, r.operation_amount) for r in results if r is not None] == [
        (first.operation_reference, 300),
        (second.operation_reference, 700),
    ]


def test_an_adyen_capture_is_not_settled_by_another_modification(adyen: Psp) -> None:
    # Given an authorisation captured by capture A, and a capture B Adyen has not applied
    held = adyen.provider.authorize(adyen.charge_request(1000), new_key())
    first = adyen.provider.capture(
        CaptureRequest(reference=held.reference, amount=1000, currency="eur"), new_key()
    )
    waiting = PendingPayment("capture", held.reference, NOT_YET_APPLIED, 1000, "eur")

    # When both are settled from the look-up
    settled_a = adyen.provider.settle(pending("capture", first), [])
    settled_b = adyen.provider.settle(waiting, [])

    # Then A is captured and B is still unknown
    assert settled_a is not None and settled_a.status is PaymentStatus.CAPTURED
    assert settled_a.operation_amount == 1000
    assert settled_b is None


def test_a_stripe_refund_result_tells_what_the_payment_captured_and_refunded(stripe: Psp) -> None:
    # Given a payment captured at 1000
    payment = stripe.provider.charge(stripe.charge_request(1000), new_key())

    # When 400, then 300 of it are refunded
    first = stripe.provider.refund(
        RefundRequest(reference=payment.reference, amount=400), new_key()
    )
    second = stripe.provider.refund(
        RefundRequest(reference=payment.reference, amount=300), new_key()
    )

    # Then each result names its own amount and the payment's captured and refunded totals
    assert (first.amount, first.amount_captured, first.amount_refunded) == (1000, 1000, 400)
    assert first.operation_amount == 400
    assert (second.amount, second.amount_captured, second.amount_refunded) == (1000, 1000, 700)
    assert second.operation_amount == 300
    # And the status is the payment's (partially refunded), the refund's own beside it
    assert first.status is PaymentStatus.PARTIALLY_REFUNDED
    assert first.operation_status == "succeeded"
    assert first.reference == second.reference == payment.reference
