"""The payment contract: typed money, typed results, and a decline that is a result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{3}$")]
# A PAN-looking run of digits; payloads carry provider tokens, never card numbers.
PAN_DIGITS = 13


class ChargeRequest(BaseModel):
    """Charge `amount` minor units of `currency` to a provider payment-method token."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=99_999_999, description="integer minor units (cents)")
    currency: CurrencyCode = Field(description="ISO 4217 code", examples=["eur"])
    payment_method: str = Field(min_length=3, max_length=255, examples=["pm_card_visa"])

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("payment_method")
    @classmethod
    def _no_card_numbers(cls, value: str) -> str:
        digits = sum(ch.isdigit() for ch in value)
        if digits >= PAN_DIGITS:
            raise ValueError("looks like a card number; send a provider payment-method token")
        return value


@dataclass(frozen=True)
class Charge:
    """A charge the provider made."""

    reference: str
    amount: int
    currency: str
    status: str


@dataclass(frozen=True)
class Decline:
    """The provider refused the payment; final, with the provider's codes."""

    code: str
    decline_code: str | None
    message: str


class PaymentProvider(Protocol):
    """What every payment adapter offers (more operations arrive with the payments issue)."""

    def charge(self, request: ChargeRequest, idempotency_key: str) -> Charge | Decline:
        """Charge once per idempotency key, however often it is called."""
        ...
