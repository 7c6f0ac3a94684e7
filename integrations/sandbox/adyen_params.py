"""The request bodies of the sandbox's Adyen API, checked as Adyen does: 422 with an errorCode."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.errors import adyen_error

MAX_AMOUNT = 99_999_999
MAX_REFERENCE = 80


@dataclass(frozen=True)
class PaymentSpec:
    """A valid `/payments` request."""

    value: int
    currency: str  # upper case, as Adyen writes it
    reference: str
    merchant_account: str
    token: str
    capture_delay_hours: int | None  # 0: capture at once; None: authorise only
    metadata: dict[str, str]


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise adyen_error(400, "702", f"Unable to parse the JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise adyen_error(400, "702", "The body must be a JSON object.")
    return body


def payment_spec(body: dict[str, Any]) -> PaymentSpec:
    """The payment a `/payments` body asks for."""
    value, currency = amount(body)
    reference = body.get("reference")
    if not isinstance(reference, str) or not 0 < len(reference) <= MAX_REFERENCE:
        raise adyen_error(422, "130", "Required field 'reference' is not provided.")
    method = body.get("paymentMethod")
    token = method.get("storedPaymentMethodId") if isinstance(method, dict) else None
    if not isinstance(token, str) or not token:
        raise adyen_error(422, "702", "paymentMethod.storedPaymentMethodId is required.")
    delay = body.get("captureDelayHours")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int) or delay < 0):
        raise adyen_error(422, "702", "captureDelayHours is a whole number of hours.")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(v, str) and len(v) <= MAX_REFERENCE for v in metadata.values()
    ):
        raise adyen_error(422, "702", "metadata maps names to strings of at most 80 characters.")
    return PaymentSpec(
        value, currency, reference, merchant_account(body), token, delay, dict(metadata)
    )


def merchant_account(body: dict[str, Any]) -> str:
    """The merchantAccount every request names."""
    account = body.get("merchantAccount")
    if not isinstance(account, str) or not account:
        raise adyen_error(422, "901", "Invalid Merchant Account")
    return account


def amount(body: dict[str, Any]) -> tuple[int, str]:
    """`amount: {value, currency}`: minor units and an upper-case ISO 4217 code."""
    given = body.get("amount")
    if not isinstance(given, dict):
        raise adyen_error(422, "100", "No amount specified")
    value, currency = given.get("value"), given.get("currency")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        raise adyen_error(422, "137", "Invalid amount specified")
    if not isinstance(currency, str) or not _upper_code(currency):
        raise adyen_error(422, "138", "Unsupported currency specified")
    return value, currency


def _upper_code(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isalpha() and text.isupper()
