"""The sandbox PSP for adapter tests: a real sandbox process and each adapter wired to it."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from integrations.http import HttpClient
from integrations.payments.adyen import AdyenPayments
from integrations.payments.base import ChargeRequest, PaymentProvider
from integrations.payments.stripe import StripePayments
from tests.integrations.test_sandbox_server import API_KEY, TIMEOUT_S, Sandbox

T = TypeVar("T")
STRIPE_VERSION = "2024-06-20"
# The sandbox reads the same variable, so adapter and sandbox agree on the Adyen key.
ADYEN_KEY = os.environ.get("CONVEYOR_ADYEN_API_KEY") or "adyen_sandbox_key"
MERCHANT_ACCOUNT = "ConveyorSandbox"


@dataclass
class Psp:
    """One adapter against the sandbox, with the test tokens its provider understands."""

    name: str
    provider: PaymentProvider
    sandbox: Sandbox
    good_token: str
    declining_token: str
    decline_code: str

    def charge_request(self, amount: int = 1000, token: str | None = None) -> ChargeRequest:
        """A charge of `amount` euro cents on a card that works, unless `token` says otherwise."""
        return ChargeRequest(amount=amount, currency="EUR", payment_method=token or self.good_token)

    def stats(self) -> dict[str, Any]:
        """The sandbox's counters."""
        return self.sandbox.stats()

    def faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /_sandbox/faults."""
        return self.sandbox.admin("/_sandbox/faults", body)


def stripe_psp(sandbox: Sandbox, http: HttpClient) -> Psp:
    """Stripe's adapter; the sandbox's own key is one its Stripe API accepts."""
    provider = StripePayments(sandbox.url, API_KEY, http, stripe_version=STRIPE_VERSION)
    return Psp(
        "stripe", provider, sandbox, "pm_card_visa", "pm_card_chargeDeclined", "generic_decline"
    )


def adyen_psp(sandbox: Sandbox, http: HttpClient) -> Psp:
    """Adyen's adapter, under the sandbox's `/adyen` prefix."""
    provider = AdyenPayments(f"{sandbox.url}/adyen", ADYEN_KEY, MERCHANT_ACCOUNT, http)
    return Psp("adyen", provider, sandbox, "stored_card_1", "refused_card", "2")


def new_key() -> str:
    """A fresh idempotency key."""
    return f"key_{uuid.uuid4().hex}"


def admin_payment(sandbox: Sandbox, provider: str, **fields: Any) -> dict[str, Any]:
    """POST /_sandbox/payments: a payment made behind Conveyor's back."""
    body = {"provider": provider, "amount": 500, "currency": "eur"} | fields
    response = requests.post(sandbox.url + "/_sandbox/payments", json=body, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    made: dict[str, Any] = response.json()
    return made


def in_flight(
    call: Callable[[], T], sandbox: Sandbox, key: str
) -> tuple[threading.Thread, list[T]]:
    """Start `call` on a thread and return once the sandbox has seen its request with `key`."""
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(call()))
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while sandbox.stats()["keys_seen"].get(key) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the key is claimed just after it is counted; leave that moment a margin
    return thread, results
