"""Stripe's objects as the sandbox writes them: the PaymentIntent and its charge."""

from __future__ import annotations

import hashlib
from typing import Any

from integrations.sandbox.errors import error_body
from integrations.sandbox.psp import Payment, Refusal, Stage

STATUSES = {
    Stage.OPEN: "requires_confirmation",
    Stage.DECLINED: "requires_payment_method",
    Stage.AUTHORIZED: "requires_capture",
    Stage.CAPTURED: "succeeded",
    Stage.CANCELED: "canceled",
    Stage.PROCESSING: "processing",
    Stage.REQUIRES_ACTION: "requires_action",
}


def render_intent(payment: Payment, expand_charge: bool = False) -> dict[str, Any]:
    """A PaymentIntent as Stripe writes it, plus `amount_refunded` (Stripe has it on the charge)."""
    status = STATUSES[payment.stage]
    if payment.stage is Stage.OPEN and payment.payment_method is None:
        status = "requires_payment_method"
    charge: str | dict[str, Any] | None = None
    if payment.stage in (Stage.DECLINED, Stage.AUTHORIZED, Stage.CAPTURED):
        charge = render_charge(payment) if expand_charge else charge_id(payment.id)
    refusal = payment.refusal if payment.stage is Stage.DECLINED else None
    return {
        "id": payment.id,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_capturable": payment.amount if payment.stage is Stage.AUTHORIZED else 0,
        "amount_received": payment.captured,
        "amount_refunded": payment.refunded,
        "capture_method": "manual" if payment.manual_capture else "automatic",
        "currency": payment.currency,
        "description": payment.description,
        "last_payment_error": None if refusal is None else card_error(refusal)["error"],
        "latest_charge": charge,
        "livemode": False,
        "metadata": dict(payment.metadata),
        "payment_method": payment.payment_method,
        "status": status,
    }


def render_charge(payment: Payment) -> dict[str, Any]:
    """The PaymentIntent's charge, where Stripe keeps what was captured and refunded."""
    return {
        "id": charge_id(payment.id),
        "object": "charge",
        "amount": payment.amount,
        "amount_captured": payment.captured,
        "amount_refunded": payment.refunded,
        "captured": payment.captured > 0,
        "refunded": payment.captured > 0 and payment.refundable == 0,
        "currency": payment.currency,
        "payment_intent": payment.id,
        "status": "failed" if payment.stage is Stage.DECLINED else "succeeded",
    }


def card_error(refusal: Refusal) -> dict[str, Any]:
    """A `card_error` body for a refusal."""
    return error_body(
        "card_error", refusal.code, refusal.message, decline_code=refusal.decline_code
    )


def charge_id(intent_id: str) -> str:
    """The id of a PaymentIntent's charge."""
    return "ch_" + hashlib.sha256(intent_id.encode()).hexdigest()[:24]
