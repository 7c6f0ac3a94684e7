"""The sandbox payment API: check a charge request, decide it, name it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.cards import DECLINES
from integrations.sandbox.errors import error_body, invalid_request

MAX_AMOUNT = 99_999_999
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class ChargeRequest:
    """A valid charge: integer minor units, a lower-case currency, a payment method id."""

    amount: int
    currency: str
    payment_method: str


@dataclass(frozen=True)
class ChargeResult:
    """The provider's answer and whether money moved; a decline is a result, not an error."""

    status: int
    body: dict[str, Any]
    effect: bool


def parse_charge(body: object) -> ChargeRequest:
    """The charge a JSON body asks for; raises a 400 ApiError naming the bad `param`."""
    if not isinstance(body, dict):
        raise invalid_request("invalid_body", "The request body must be a JSON object.")
    amount = _required(body, "amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise invalid_request(
            "parameter_invalid_integer",
            f"amount must be an integer number of minor units from 1 to {MAX_AMOUNT}.",
            "amount",
        )
    currency = _required(body, "currency")
    if not (isinstance(currency, str) and len(currency) == 3 and _ascii_letters(currency)):
        raise invalid_request("parameter_invalid", "currency must be 3 letters.", "currency")
    method = _required(body, "payment_method")
    if not isinstance(method, str) or not method.startswith("pm_") or len(method) < 4:
        raise invalid_request(
            "parameter_invalid", "payment_method must be an id such as pm_...", "payment_method"
        )
    return ChargeRequest(amount, currency.lower(), method)


def check_key(key: str | None) -> str:
    """The Idempotency-Key header, which every charge must carry."""
    if not key:
        raise invalid_request(
            "idempotency_key_missing", "POST /v1/charges requires an Idempotency-Key header."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise invalid_request(
            "idempotency_key_invalid", f"Idempotency-Key is at most {MAX_KEY_LENGTH} characters."
        )
    return key


def fingerprint(body: object) -> str:
    """A digest of the request body that ignores key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def charge_id(key: str) -> str:
    """The charge id for an idempotency key: the same key always names the same charge."""
    return "ch_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def decide(key: str, request: ChargeRequest) -> ChargeResult:
    """Charge or decline, deterministically from the payment method."""
    decline = DECLINES.get(request.payment_method)
    if decline is not None:
        body = error_body(
            "card_error",
            "card_declined",
            "Your card was declined.",
            decline_code=decline,
        )
        return ChargeResult(402, body, effect=False)
    charge = {
        "id": charge_id(key),
        "object": "charge",
        "status": "succeeded",
        "amount": request.amount,
        "currency": request.currency,
        "payment_method": request.payment_method,
        "idempotency_key": key,
    }
    return ChargeResult(201, charge, effect=True)


def _required(body: dict[str, Any], name: str) -> Any:
    if name not in body or body[name] is None:
        raise invalid_request("parameter_missing", f"Missing required param: {name}.", name)
    return body[name]


def _ascii_letters(text: str) -> bool:
    return text.isascii() and text.isalpha()
