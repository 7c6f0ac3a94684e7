"""The parameters of the sandbox's Stripe API, checked as Stripe does: a 400 naming `param`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.sandbox.errors import invalid_request

MAX_AMOUNT = 99_999_999


@dataclass(frozen=True)
class IntentSpec:
    """A valid PaymentIntent create request."""

    amount: int
    currency: str
    payment_method: str | None
    confirm: bool
    manual_capture: bool
    metadata: dict[str, str]
    description: str | None


def intent_spec(form: dict[str, Any]) -> IntentSpec:
    """The PaymentIntent a create request asks for."""
    currency = form.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and _letters(currency)):
        raise invalid_request("parameter_invalid", "currency must be 3 letters.", "currency")
    types = form.get("payment_method_types", ["card"])
    if not isinstance(types, list) or not set(types) <= {"card"}:
        raise invalid_request("parameter_invalid", "Only card.", "payment_method_types")
    capture_method = form.get("capture_method", "automatic")
    if capture_method not in ("automatic", "automatic_async", "manual"):
        raise invalid_request(
            "parameter_invalid", "capture_method is automatic or manual.", "capture_method"
        )
    spec = IntentSpec(
        amount=required_amount(form, "amount"),
        currency=currency.lower(),
        payment_method=payment_method(form.get("payment_method")),
        confirm=boolean(form, "confirm"),
        manual_capture=capture_method == "manual",
        metadata=metadata(form),
        description=text(form, "description"),
    )
    if spec.confirm and spec.payment_method is None:
        raise invalid_request(
            "payment_intent_unexpected_state",
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
        )
    return spec


def amount(form: dict[str, Any], name: str, *, required: bool) -> int | None:
    """A positive integer amount of minor units; None when absent and optional."""
    value = form.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise invalid_request("parameter_missing", f"Missing required param: {name}.", name)
    if not (isinstance(value, str) and value.isdigit() and 0 < int(value) <= MAX_AMOUNT):
        raise invalid_request(
            "parameter_invalid_integer", f"{name} is an integer from 1 to {MAX_AMOUNT}.", name
        )
    return int(value)


def required_amount(form: dict[str, Any], name: str) -> int:
    """A positive integer amount of minor units that must be there."""
    value = amount(form, name, required=True)
    assert value is not None  # amount() raises when a required one is missing
    return value


def payment_method(value: object) -> str | None:
    """A `pm_…` id, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("pm_") or len(value) < 4:
        raise invalid_request(
            "parameter_invalid", "payment_method is an id such as pm_card_visa.", "payment_method"
        )
    return value


def boolean(form: dict[str, Any], name: str) -> bool:
    """`true` or `false` (default false)."""
    value = form.get(name, "false")
    if value not in ("true", "false"):
        raise invalid_request("parameter_invalid", f"{name} is true or false.", name)
    return bool(value == "true")


def metadata(form: dict[str, Any]) -> dict[str, str]:
    """`metadata[name]=value` pairs within Stripe's limits."""
    metadata = form.get("metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > 50:
        raise invalid_request("parameter_invalid", "metadata[name]=value, at most 50.", "metadata")
    for name, value in metadata.items():
        if len(name) > 40 or len(value) > 500:
            raise invalid_request(
                "parameter_invalid", "metadata names ≤ 40 and values ≤ 500 chars.", "metadata"
            )
    return dict(metadata)


def text(form: dict[str, Any], name: str) -> str | None:
    """An optional string."""
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_request("parameter_invalid", f"{name} is a string.", name)
    return value


def _letters(text: str) -> bool:
    return text.isascii() and text.isalpha()
