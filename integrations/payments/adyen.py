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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from integrations.errors import PermanentError, TransientError, UnknownOutcome
from integrations.http import HttpClient, HttpResponse, path_segment
from integrations.payments.base import (
    CaptureRequest,
    ChargeRequest,
    Decline,
    PaymentResult,
    PaymentStatus,
    PendingPayment,
    RefundRequest,
    VoidRequest,
    captured_status,
)
from integrations.status import error_for_status

API_VERSION = "v71"
MAX_KEY_LENGTH = 64
MAX_REFERENCE_LENGTH = 80
KEY_METADATA = "conveyor_key"
# 704: "request already processed or in progress"; 703 is treated alike (retry later).
IN_PROGRESS_CODES = frozenset({"703", "704"})
# The webhook eventCode that reports each modification's outcome.
MODIFICATION_EVENTS = {"capture": "CAPTURE", "refund": "REFUND", "void": "CANCELLATION"}
# https://docs.adyen.com/online-payments/build-your-integration/payment-result-codes
PENDING_RESULT_CODES = frozenset(
    {"Pending", "Received", "AuthenticationNotRequired", "AuthenticationFinished"}
)
ACTION_RESULT_CODES = frozenset(
    {"PresentToShopper", "RedirectShopper", "IdentifyShopper", "ChallengeShopper"}
)


def transient_hint(headers: Mapping[str, str]) -> bool | None:
    """Adyen's `transient-error` header: true means retry later with the same key."""
    value = headers.get("transient-error")
    return None if value is None else value.strip().lower() == "true"


def classify(response: HttpResponse) -> dict[str, Any]:
    """What an Adyen answer means: the object on 2xx, or raise the error it stands for.

    The one place Adyen's answers are read (https://docs.adyen.com/development-resources/
    error-codes): the `transient-error` header wins over the status; `errorCode` 704 ("request
    already processed or in progress") with it true is a request with this key still in flight
    (retry later, same key), without it a key reused for another request (permanent); 703 is
    treated as in flight. Other statuses follow the shared default.
    """
    body = response.body
    if 200 <= response.status < 300:
        if not isinstance(body, dict):
            raise UnknownOutcome(
                f"Adyen answered {response.status} with a body that is not an object",
                http_status=response.status,
                code="unreadable_answer",
            )
        return body
    body = body if isinstance(body, dict) else {}
    code = str(body.get("errorCode") or "adyen_error")
    message = str(body.get("message") or f"HTTP {response.status}")
    status = response.status
    transient = transient_hint(response.headers)
    in_flight = transient is True or (transient is None and code == "703")
    if code in IN_PROGRESS_CODES and in_flight:
        raise TransientError(message, http_status=status, code="idempotency_key_in_use")
    if code == "704":
        reused = f"Idempotency-Key reused for another request: {message}"
        raise PermanentError(reused, http_status=status, code="idempotency_key_reused")
    error = error_for_status(status, response.headers, message, code, should_retry=transient)
    if error is None:
        raise UnknownOutcome(message, http_status=status, code="unexpected_status")
    raise error


def event_result(pending: PendingPayment, item: Mapping[str, Any]) -> PaymentResult | None:
    """What an Adyen notification item says of a pending modification; None: not about it.

    Adyen reports a modification's outcome by webhook: `eventCode` CAPTURE, REFUND or
    CANCELLATION, `pspReference` the modification, `success` "true" or "false".
    """
    if pending.operation not in MODIFICATION_EVENTS:
        return None
    if item.get("eventCode") != MODIFICATION_EVENTS[pending.operation]:
        return None
    if pending.operation_reference and item.get("pspReference") != pending.operation_reference:
        return None
    amount = _value(item.get("amount")) or (pending.amount or 0)
    currency = _currency(item.get("amount")) or (pending.currency or "")
    if str(item.get("success")).lower() != "true":
        decline = Decline("modification_refused", str(item.get("reason") or "refused by Adyen"))
        return PaymentResult(
            PaymentStatus.DECLINED, pending.reference, amount, currency, decline=decline
        )
    status = {
        "capture": PaymentStatus.CAPTURED,
        "refund": PaymentStatus.REFUNDED,
        "void": PaymentStatus.VOIDED,
    }[pending.operation]
    return PaymentResult(
        status,
        pending.reference,
        amount,
        currency,
        amount_captured=amount if pending.operation == "capture" else 0,
        amount_refunded=amount if pending.operation == "refund" else 0,
        operation_reference=pending.operation_reference,
        operation_amount=amount,
    )


# What a payment is once one modification of each kind has been applied.
MODIFICATION_DONE = {
    "capture": PaymentStatus.CAPTURED,
    "refund": PaymentStatus.REFUNDED,
    "void": PaymentStatus.VOIDED,
}


def applied_modification(payment: Mapping[str, Any], pending: PendingPayment) -> int | None:
    """The amount a pending modification moved, if the look-up lists it as applied; else None.

    Matched by the modification's own pspReference, never by the payment's totals: an earlier
    refund or capture of the same payment says nothing of this one.
    """
    if not pending.operation_reference:
        return None
    listed = payment.get("modifications")
    for item in listed if isinstance(listed, list) else []:
        if (
            isinstance(item, Mapping)
            and item.get("pspReference") == pending.operation_reference
            and item.get("type") == pending.operation
            and item.get("status") == "applied"
        ):
            return _value(item.get("amount")) if item.get("amount") else (pending.amount or 0)
    return None


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
        status = captured_status(captured, refunded)
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
            found = self._send("GET", f"/payments/{path_segment(reference)}", None, None)
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
        if status is None and result_code in ACTION_RESULT_CODES:
            status = PaymentStatus.ACTION_REQUIRED
        if status is None and result_code not in PENDING_RESULT_CODES:
            raise UnknownOutcome(
                f"Adyen answered resultCode {result_code!r}", code="unreadable_answer"
            )
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
        path = f"/payments/{path_segment(reference)}/{kind}"
        answer = self._send("POST", path, body, key)
        if answer.get("status") != "received":
            raise ValueError(f"Adyen answered a modification with {answer.get('status')!r}")
        value = _value(answer.get("amount")) or (amount[0] if amount is not None else 0)
        currency = _currency(answer.get("amount")) or (amount[1].lower() if amount else "")
        # `received` is not done: the outcome comes by webhook (or, in the sandbox, a look-up).
        return PaymentResult(
            status=PaymentStatus.PENDING,
            reference=reference,
            amount=value,
            currency=currency,
            operation_reference=str(answer.get("pspReference") or "") or None,
            operation_amount=value if amount is not None else None,
            raw=answer,
        )

    def settle(
        self, pending: PendingPayment, events: Sequence[Mapping[str, Any]]
    ) -> PaymentResult | None:
        """A pending payment or modification from its webhook, or (sandbox only) a look-up."""
        for item in events:
            found = event_result(pending, item)
            if found is not None:
                return found
        now = self.retrieve(pending.reference)
        if now is None:
            return None
        if pending.operation not in MODIFICATION_EVENTS:
            return now
        applied = applied_modification(now.raw, pending)
        if applied is None:
            return None  # not this modification yet, whatever others did to the payment
        return replace(
            now,
            status=MODIFICATION_DONE[pending.operation],
            operation_reference=pending.operation_reference,
            operation_amount=applied,
            currency=pending.currency or now.currency,
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
        response = self.http.send(
            method,
            f"{self.base_url}/{API_VERSION}{path}",
            headers=headers,
            json=body,
            deadline=self.deadline,
        )
        return classify(response)


def _reference(key: str) -> str:
    """The merchant reference: the key itself when it fits, so Adyen's reports show it."""
    return key if len(key) <= MAX_REFERENCE_LENGTH else adyen_key(key)


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
