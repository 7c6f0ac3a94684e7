"""Adyen Checkout API v71: `/payments` and its captures, refunds and cancels, one request each.

Every POST carries `Idempotency-Key`. Adyen takes at most 64 characters; a longer key is sent
as its SHA-256 hex digest (64 characters), which is stable, so every retry of the operation
still sends the same key. Currency goes out upper case and comes back lower case.

Adyen answers modifications with `received` and reports their outcome by webhook; it has no
endpoint to look a payment up. Against the sandbox, which has one
(`GET /payments/{pspReference}`), the adapter reads the payment after a modification and
`retrieve` works; against real Adyen both give way: the modification's result is PENDING and
`retrieve` returns None, so reconciliation there relies on webhooks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from integrations.errors import (
    IntegrationError,
    PermanentError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from integrations.http import HttpClient
from integrations.payments.base import (
    CaptureRequest,
    ChargeRequest,
    Decline,
    PaymentResult,
    PaymentStatus,
    RefundRequest,
    VoidRequest,
)
from integrations.payments.classify import HeaderProbe, body_of, restated
from integrations.status import TRANSIENT_STATUSES

API_VERSION = "v71"
MAX_KEY_LENGTH = 64
MAX_REFERENCE_LENGTH = 80
KEY_METADATA = "conveyor_key"
# 704: "request already processed or in progress"; 703 is treated alike (retry later).
IN_PROGRESS_CODES = frozenset({"703", "704"})
PENDING_RESULT_CODES = frozenset(
    {"Pending", "Received", "PresentToShopper", "RedirectShopper", "IdentifyShopper"}
    | {"ChallengeShopper", "AuthenticationNotRequired", "AuthenticationFinished"}
)


def transient_hint(headers: Mapping[str, str]) -> bool | None:
    """Adyen's `transient-error` header: true means retry later with the same key."""
    value = headers.get("transient-error")
    return None if value is None else value.strip().lower() == "true"


def classify(error: IntegrationError, *, transient: bool | None = None) -> IntegrationError:
    """The error to raise for a failed Adyen call, from `errorCode` and `transient-error`.

    `transient` is the `transient-error` header, which wins over the status. 704 ("request
    already processed or in progress") with it true is a request with this key still in flight:
    retry later, same key. 704 without it cannot be helped by retrying (the sandbox answers so
    for a key reused with another body).
    """
    if error.http_status is None:
        return error  # no answer at all: the HTTP client already knows what that means
    body = body_of(error)
    body = body if isinstance(body, dict) else {}
    code = str(body.get("errorCode") or "adyen_error")
    message = str(body.get("message") or error.message)
    in_flight = transient is True or (transient is None and code == "703")
    if code in IN_PROGRESS_CODES and in_flight:
        return restated(error, TransientError, code="idempotency_key_in_use", message=message)
    if code == "704":
        reused = f"Idempotency-Key reused for another request: {message}"
        return restated(error, PermanentError, code="idempotency_key_reused", message=reused)
    if error.http_status == 429:
        return restated(error, RateLimited, code=code, message=message)
    if transient is not None:
        chosen: type[IntegrationError] = TransientError if transient else PermanentError
        return restated(error, chosen, code=code, message=message)
    if error.http_status in TRANSIENT_STATUSES:
        return restated(error, TransientError, code=code, message=message)
    return restated(error, PermanentError, code=code, message=message)


def adyen_key(idempotency_key: str) -> str:
    """The key as Adyen accepts it: itself if short enough, else its SHA-256 hex digest."""
    if len(idempotency_key) <= MAX_KEY_LENGTH:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def payment_result(payment: Mapping[str, Any]) -> PaymentResult:
    """The sandbox's payment lookup as a `PaymentResult`."""
    amount = _value(payment.get("amount"))
    captured = _value(payment.get("capturedAmount"))
    refunded = _value(payment.get("refundedAmount"))
    status = {
        "Authorised": PaymentStatus.AUTHORIZED,
        "Refused": PaymentStatus.DECLINED,
        "Cancelled": PaymentStatus.VOIDED,
    }.get(str(payment.get("status")), PaymentStatus.PENDING)
    if payment.get("status") == "Captured":
        status = _captured_status(captured, refunded)
    metadata = payment.get("metadata")
    return PaymentResult(
        status=status,
        reference=str(payment["pspReference"]),
        amount=amount,
        currency=_currency(payment.get("amount")),
        amount_captured=captured,
        amount_refunded=refunded,
        decline=_decline(payment) if status is PaymentStatus.DECLINED else None,
        idempotency_key=metadata.get(KEY_METADATA) if isinstance(metadata, Mapping) else None,
        raw=dict(payment),
    )


class AdyenPayments:
    """The `PaymentProvider` for Adyen (and the sandbox's Adyen-compatible API)."""

    name = "adyen"
    key_retention = timedelta(days=7)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        merchant_account: str,
        http: HttpClient,
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.merchant_account = merchant_account
        self.http = http
        self.deadline = deadline

    def authorize(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Authorise only (no `captureDelayHours`); a refusal is a DECLINED result."""
        return self._pay(request, idempotency_key, capture=False)

    def charge(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Authorise with `captureDelayHours: 0`, so Adyen captures at once."""
        return self._pay(request, idempotency_key, capture=True)

    def capture(self, request: CaptureRequest, idempotency_key: str) -> PaymentResult:
        """Capture `amount`, or (looked up in the sandbox) the whole authorisation."""
        amount = self._amount(request.reference, request.amount, request.currency, "amount")
        return self._modify("captures", request.reference, amount, idempotency_key)

    def refund(self, request: RefundRequest, idempotency_key: str) -> PaymentResult:
        """Refund `amount`; without one, the whole captured amount (name the rest after a part)."""
        given = self._amount(request.reference, request.amount, request.currency, "captured")
        return self._modify("refunds", request.reference, given, idempotency_key)

    def void(self, request: VoidRequest, idempotency_key: str) -> PaymentResult:
        """Cancel an authorisation."""
        return self._modify("cancels", request.reference, None, idempotency_key)

    def retrieve(self, reference: str) -> PaymentResult | None:
        """The sandbox's payment lookup; None for an unknown payment, and always on real Adyen."""
        try:
            found = self._send("GET", f"/payments/{reference}", None, None)
        except PermanentError as exc:
            if exc.http_status in (404, 405):
                return None
            raise
        return payment_result(found)

    def find_by_key(self, idempotency_key: str) -> PaymentResult | None:
        """Always None: Adyen cannot search payments by reference or metadata (use webhooks)."""
        return None

    def _pay(self, request: ChargeRequest, key: str, *, capture: bool) -> PaymentResult:
        body: dict[str, Any] = {
            "amount": {"value": request.amount, "currency": request.currency.upper()},
            "reference": _reference(key),
            "merchantAccount": self.merchant_account,
            "paymentMethod": {"type": "scheme", "storedPaymentMethodId": request.payment_method},
            "shopperInteraction": "ContAuth",
            "recurringProcessingModel": "UnscheduledCardOnFile",
        }
        if len(key) <= MAX_REFERENCE_LENGTH:
            body["metadata"] = {KEY_METADATA: key}
        if capture:
            body["captureDelayHours"] = 0
        answer = self._send("POST", "/payments", body, key)
        result_code = answer.get("resultCode")
        if result_code == "Error":
            reason = answer.get("refusalReason") or "Adyen could not process the payment"
            raise PermanentError(str(reason), code="adyen_result_error")
        status = {
            "Authorised": PaymentStatus.CAPTURED if capture else PaymentStatus.AUTHORIZED,
            "Refused": PaymentStatus.DECLINED,
            "Cancelled": PaymentStatus.VOIDED,
        }.get(str(result_code))
        if status is None and result_code not in PENDING_RESULT_CODES:
            raise UnknownOutcome(f"Adyen answered resultCode {result_code!r}", code="adyen_result")
        status = status or PaymentStatus.PENDING
        amount = _value(answer.get("amount")) or request.amount
        return PaymentResult(
            status=status,
            reference=str(answer["pspReference"]),
            amount=amount,
            currency=request.currency,
            amount_captured=amount if status is PaymentStatus.CAPTURED else 0,
            decline=_decline(answer) if status is PaymentStatus.DECLINED else None,
            idempotency_key=key,
            raw=answer,
        )

    def _modify(
        self, kind: str, reference: str, amount: tuple[int, str] | None, key: str
    ) -> PaymentResult:
        body: dict[str, Any] = {
            "merchantAccount": self.merchant_account,
            "reference": _reference(key),
        }
        if amount is not None:
            body["amount"] = {"value": amount[0], "currency": amount[1].upper()}
        answer = self._send("POST", f"/payments/{reference}/{kind}", body, key)
        operation = str(answer.get("pspReference") or "")
        try:
            now = self.retrieve(reference)
        except IntegrationError:
            now = None  # the modification was received; its outcome will come by webhook
        if now is not None:
            return replace(now, operation_reference=operation)
        value, currency = amount if amount is not None else (0, "")
        return PaymentResult(
            status=PaymentStatus.PENDING,
            reference=reference,
            amount=value,
            currency=currency.lower(),
            amount_captured=value if kind == "captures" else 0,
            amount_refunded=value if kind == "refunds" else 0,
            operation_reference=operation,
            raw=answer,
        )

    def _amount(
        self, reference: str, amount: int | None, currency: str | None, whole: str
    ) -> tuple[int, str]:
        """Adyen needs amount and currency on captures and refunds; fill gaps from a lookup."""
        if amount is not None and currency is not None:
            return amount, currency
        found = self.retrieve(reference)
        if found is None:
            raise PermanentError(
                f"Adyen needs the amount and currency to modify {reference}; none were given "
                "and the payment cannot be looked up",
                code="amount_required",
            )
        default = found.amount if whole == "amount" else found.amount_captured
        return (amount if amount is not None else default), (currency or found.currency)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, key: str | None
    ) -> dict[str, Any]:
        headers = {"X-API-Key": self.api_key}
        if key is not None:
            headers["Idempotency-Key"] = adyen_key(key)
        probe = HeaderProbe(transient_hint)
        try:
            response = self.http.request(
                method,
                f"{self.base_url}/{API_VERSION}{path}",
                headers=headers,
                json=body,
                deadline=self.deadline,
                retry_hint=probe,
            )
        except IntegrationError as exc:
            verdict = classify(exc, transient=transient_hint(probe.headers))
            if verdict is exc:
                raise
            raise verdict from exc
        answer = response.body
        if not isinstance(answer, dict):
            raise UnknownOutcome(f"Adyen answered {method} {path} with a non-object body")
        return answer


def _reference(key: str) -> str:
    """The merchant reference: the key itself when it fits, so Adyen's reports show it."""
    return key if len(key) <= MAX_REFERENCE_LENGTH else adyen_key(key)


def _captured_status(captured: int, refunded: int) -> PaymentStatus:
    if refunded and refunded >= captured:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED if refunded else PaymentStatus.CAPTURED


def _decline(answer: Mapping[str, Any]) -> Decline:
    return Decline(
        code="card_declined",
        message=str(answer.get("refusalReason") or "Refused"),
        decline_code=answer.get("refusalReasonCode"),
    )


def _value(amount: object) -> int:
    value = amount.get("value") if isinstance(amount, Mapping) else None
    return value if isinstance(value, int) else 0


def _currency(amount: object) -> str:
    currency = amount.get("currency") if isinstance(amount, Mapping) else None
    return currency.lower() if isinstance(currency, str) else ""
