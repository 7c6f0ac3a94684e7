"""The payment contract: typed requests and results; a decline is a result, not an exception.

Every adapter (stripe, adyen, sandbox) implements `PaymentProvider`. Each operation with an
effect takes the idempotency key the caller derived and persisted for it; an adapter sends that
key on every request of the operation and never makes one up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from integrations.payments.money import Amount, Currency, PaymentToken


class PaymentStatus(StrEnum):
    """Where a payment stands at the provider, in our words."""

    AUTHORIZED = "authorized"  # funds held, not captured
    CAPTURED = "captured"  # money moved (a charge)
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"  # authorization cancelled
    PENDING = "pending"  # the provider accepted and has not settled yet
    ACTION_REQUIRED = "action_required"  # the customer must act (3-D Secure, a redirect)
    DECLINED = "declined"


def captured_status(captured: int, refunded: int) -> PaymentStatus:
    """A captured payment's status once `refunded` of its `captured` minor units went back."""
    if refunded and refunded >= captured:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED if refunded else PaymentStatus.CAPTURED


class ChargeRequest(BaseModel):
    """Authorize (and for `charge`, capture) `amount` of `currency` on a payment token."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: Currency
    payment_method: PaymentToken
    description: str | None = Field(default=None, max_length=500)


class CaptureRequest(BaseModel):
    """Capture an authorization, in full or (with `amount`) in part."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=255)
    amount: Amount | None = None
    currency: Currency | None = None


class RefundRequest(BaseModel):
    """Refund a captured payment, in full or (with `amount`) in part."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=255)
    amount: Amount | None = None
    currency: Currency | None = None


class VoidRequest(BaseModel):
    """Cancel an authorization that was not captured."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=255)


@dataclass(frozen=True)
class Decline:
    """The provider refused; final, with its codes."""

    code: str
    message: str
    decline_code: str | None = None


@dataclass(frozen=True)
class PaymentResult:
    """A payment (or refund) as the provider reports it after an operation or a lookup."""

    status: PaymentStatus
    reference: str  # the provider's id of the payment (PaymentIntent id, pspReference)
    amount: int
    currency: str
    amount_captured: int = 0
    amount_refunded: int = 0
    operation_reference: str | None = None  # e.g. the refund's own id
    # What this operation moved, in minor units, as the provider reports it (a refund's own
    # amount); None: read it from the payment's totals.
    operation_amount: int | None = None
    # The operation's own status as the provider put it (a refund's `succeeded`), when `status`
    # is the payment's.
    operation_status: str | None = None
    decline: Decline | None = None
    idempotency_key: str | None = None  # as the provider remembers it, when it can tell
    raw: dict[str, object] = field(default_factory=dict)

    @property
    def declined(self) -> bool:
        """Whether this is a refusal rather than an effect."""
        return self.status is PaymentStatus.DECLINED


class PaymentProvider(Protocol):
    """What every payment adapter offers; all calls go through our one HTTP client."""

    name: str
    # How long the provider honours an idempotency key (Stripe 24 h, Adyen 7 days).
    key_retention: timedelta

    def authorize(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Hold funds; a decline comes back as a result with status DECLINED."""
        ...

    def charge(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Authorize and capture at once."""
        ...

    def capture(self, request: CaptureRequest, idempotency_key: str) -> PaymentResult:
        """Capture an authorization."""
        ...

    def refund(self, request: RefundRequest, idempotency_key: str) -> PaymentResult:
        """Refund a capture, fully or partly."""
        ...

    def void(self, request: VoidRequest, idempotency_key: str) -> PaymentResult:
        """Cancel an authorization."""
        ...

    def retrieve(self, reference: str) -> PaymentResult | None:
        """The payment as the provider sees it now; None when it does not know it."""
        ...

    def find_by_key(self, idempotency_key: str) -> PaymentResult | None:
        """The payment created under this key (searched by metadata), if the provider has one."""
        ...

    def settle(
        self, pending: PendingPayment, events: Sequence[Mapping[str, Any]]
    ) -> PaymentResult | None:
        """Where an operation the provider answered pending stands now; None: still unknown.

        `events` are the provider's webhook payloads stored for the payment, newest first.
        """
        ...


@dataclass(frozen=True)
class PendingPayment:
    """An operation the provider accepted without settling: what a later look-up needs."""

    operation: str
    reference: str  # the payment
    operation_reference: str | None = None  # the modification or refund, when it has an id
    amount: int | None = None  # what the operation asked to move, as the provider echoed it
    currency: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The form kept in the job's result while it awaits the provider."""
        return {
            "status": PaymentStatus.PENDING.value,
            "operation": self.operation,
            "reference": self.reference,
            "operation_reference": self.operation_reference,
            "amount": self.amount,
            "currency": self.currency,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PendingPayment:
        """Read back what `to_json` wrote."""
        return cls(
            operation=str(value["operation"]),
            reference=str(value["reference"]),
            operation_reference=value.get("operation_reference"),
            amount=value.get("amount"),
            currency=value.get("currency"),
        )
