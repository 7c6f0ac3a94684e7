"""The sandbox PSP's payment book, shared by its Stripe-like and Adyen-like APIs.

Each API names things its own way (a PaymentIntent `requires_capture`, an Adyen payment
`Authorised`); the book only knows stages and amounts, and refuses what a stage does not allow.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """Where a payment stands."""

    OPEN = "open"  # created, not confirmed yet
    DECLINED = "declined"
    AUTHORIZED = "authorized"  # funds held
    CAPTURED = "captured"  # money moved; refunds allowed
    CANCELED = "canceled"
    PROCESSING = "processing"  # accepted, not settled yet: settles by itself after a moment
    REQUIRES_ACTION = "requires_action"  # waits for the customer (3-D Secure); never settles here


# How long a `processing` payment takes to settle on its own.
PROCESSING_S = 1.0


@dataclass(frozen=True)
class Refusal:
    """Why the card was declined, as the API words it."""

    code: str
    message: str
    decline_code: str | None = None


@dataclass(frozen=True)
class Payment:
    """One payment as the book holds it; operations return new copies, never shared ones."""

    id: str
    provider: str
    amount: int
    currency: str  # lower case
    stage: Stage = Stage.OPEN
    payment_method: str | None = None
    manual_capture: bool = False
    captured: int = 0
    refunded: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    reference: str | None = None  # the merchant's reference (Adyen)
    refusal: Refusal | None = None
    settles_at: float | None = None  # monotonic time a PROCESSING payment settles
    # Modifications applied to it (Adyen): (pspReference, kind, amount), oldest first.
    modifications: tuple[tuple[str, str, int], ...] = ()

    @property
    def refundable(self) -> int:
        """What is left to refund."""
        return self.captured - self.refunded


class BookError(Exception):
    """An operation the payment does not allow; `reason` is one of REASONS."""

    REASONS = frozenset({"missing", "state", "amount_too_large", "already_refunded"})

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PaymentBook:
    """Payments by id, behind one lock; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payments: dict[str, Payment] = {}

    def clear(self) -> None:
        """Forget every payment."""
        with self._lock:
            self._payments.clear()

    def add(self, payment: Payment) -> Payment:
        """Record a new payment."""
        with self._lock:
            self._payments[payment.id] = payment
            return payment

    def get(self, payment_id: str) -> Payment:
        """The payment with this id; BookError("missing") if there is none."""
        with self._lock:
            return self._get(payment_id)

    def find(self, provider: str, name: str, value: str) -> list[Payment]:
        """The provider's payments whose metadata `name` equals `value`, oldest first."""
        with self._lock:
            return [
                p
                for p in self._payments.values()
                if p.provider == provider and p.metadata.get(name) == value
            ]

    def confirm(
        self,
        payment_id: str,
        refusal: Refusal | None,
        payment_method: str | None = None,
        waits: Stage | None = None,
    ) -> Payment:
        """Authorize (and capture, unless manual) an open payment, or record its decline.

        `waits` (PROCESSING or REQUIRES_ACTION) leaves it unsettled instead: a processing
        payment settles by itself after PROCESSING_S, one requiring action never does here.
        """
        with self._lock:
            payment = self._get(payment_id)
            if payment.stage not in (Stage.OPEN, Stage.DECLINED):
                raise BookError("state", f"payment {payment_id} is {payment.stage}")
            method = payment_method or payment.payment_method
            if waits is not None and refusal is None:
                settles = time.monotonic() + PROCESSING_S if waits is Stage.PROCESSING else None
                return self._put(
                    replace(payment, stage=waits, payment_method=method, settles_at=settles)
                )
            if refusal is not None:
                stage, captured = Stage.DECLINED, 0
            elif payment.manual_capture:
                stage, captured = Stage.AUTHORIZED, 0
            else:
                stage, captured = Stage.CAPTURED, payment.amount
            return self._put(
                replace(
                    payment, stage=stage, captured=captured, refusal=refusal, payment_method=method
                )
            )

    def capture(self, payment_id: str, amount: int | None) -> Payment:
        """Capture an authorization once, in full or in part; the rest is released."""
        with self._lock:
            payment = self._get(payment_id)
            if payment.stage is not Stage.AUTHORIZED:
                raise BookError("state", f"payment {payment_id} is {payment.stage}, not authorized")
            amount = payment.amount if amount is None else amount
            if amount > payment.amount:
                raise BookError(
                    "amount_too_large", f"{amount} is more than the {payment.amount} authorized"
                )
            return self._put(replace(payment, stage=Stage.CAPTURED, captured=amount))

    def refund(self, payment_id: str, amount: int | None) -> tuple[Payment, int]:
        """Refund part or (with None) all of what is left; returns the payment and the amount."""
        with self._lock:
            payment = self._get(payment_id)
            if payment.stage is not Stage.CAPTURED:
                raise BookError("state", f"payment {payment_id} is {payment.stage}, not captured")
            if payment.refundable == 0:
                raise BookError("already_refunded", f"payment {payment_id} is fully refunded")
            amount = payment.refundable if amount is None else amount
            if amount > payment.refundable:
                raise BookError(
                    "amount_too_large",
                    f"{amount} is more than the {payment.refundable} left to refund",
                )
            return self._put(replace(payment, refunded=payment.refunded + amount)), amount

    def cancel(self, payment_id: str) -> Payment:
        """Cancel a payment that has not been captured."""
        with self._lock:
            payment = self._get(payment_id)
            if payment.stage in (Stage.CAPTURED, Stage.CANCELED):
                raise BookError("state", f"payment {payment_id} is {payment.stage}")
            return self._put(replace(payment, stage=Stage.CANCELED))

    def note_modification(
        self, payment_id: str, psp_reference: str, kind: str, amount: int
    ) -> None:
        """Remember that a modification with its own reference was applied to the payment."""
        with self._lock:
            payment = self._get(payment_id)
            done = (*payment.modifications, (psp_reference, kind, amount))
            self._put(replace(payment, modifications=done))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Every payment in brief: id → provider, stage and amounts."""
        with self._lock:
            return {
                p.id: {
                    "provider": p.provider,
                    "status": p.stage.value,
                    "amount": p.amount,
                    "currency": p.currency,
                    "captured": p.captured,
                    "refunded": p.refunded,
                    "metadata": dict(p.metadata),
                }
                for p in self._payments.values()
            }

    def _get(self, payment_id: str) -> Payment:
        payment = self._payments.get(payment_id)
        if payment is None:
            raise BookError("missing", f"no such payment: {payment_id}")
        if payment.settles_at is not None and time.monotonic() >= payment.settles_at:
            stage, captured = (
                (Stage.AUTHORIZED, 0)
                if payment.manual_capture
                else (Stage.CAPTURED, payment.amount)
            )
            payment = self._put(replace(payment, stage=stage, captured=captured, settles_at=None))
        return payment

    def _put(self, payment: Payment) -> Payment:
        self._payments[payment.id] = payment
        return payment
