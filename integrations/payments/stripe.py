"""Stripe PaymentIntents and refunds, one request per operation, through our one HTTP client.

Every POST carries the caller's `Idempotency-Key` and is form-encoded (`metadata[k]=v`). Creates
also put the key in `metadata[conveyor_key]`, so `find_by_key` can search for a payment whose
answer was lost. Note that Stripe's search is eventually consistent: a payment made seconds ago
may not be found yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from integrations.status import error_for_status, stripe_should_retry

KEY_METADATA = "conveyor_key"


class _Declined(Exception):
    """A card error met inside an operation; the operation returns it as a DECLINED result."""

    def __init__(self, decline: Decline, intent: Mapping[str, Any] | None) -> None:
        super().__init__(decline.message)
        self.decline = decline
        self.intent = intent


def classify(response: HttpResponse) -> dict[str, Any] | Decline:
    """What a Stripe answer means: the object on 2xx, a decline (a result), or raise the error.

    The one place Stripe's answers are read (https://docs.stripe.com/error-handling):
    `Stripe-Should-Retry` wins over the status, as in Stripe's SDKs; a 402 or `card_error` is a
    decline; `Idempotent-Replayed: true` on a 5xx means every retry with this key gets the same
    saved 500, whose outcome Stripe calls indeterminate, so it is an UnknownOutcome for
    reconciliation rather than a transient blip; `idempotency_error` is a key still in flight
    (409, retry) or reused with other parameters (400, permanent). Other statuses follow the
    shared default (`integrations.status.error_for_status`).
    """
    body = response.body
    if 200 <= response.status < 300:
        if not isinstance(body, dict):
            raise UnknownOutcome(
                f"Stripe answered {response.status} with a body that is not an object",
                http_status=response.status,
                code="unreadable_answer",
            )
        return body
    err = _error_object(body)
    kind, code = str(err.get("type") or ""), err.get("code")
    message = str(err.get("message") or f"HTTP {response.status}")
    status = response.status
    should_retry = stripe_should_retry(response.headers)
    replayed = (response.headers.get("Idempotent-Replayed") or "").lower() == "true"
    if kind == "card_error" or status == 402:
        return Decline(str(code or "card_declined"), message, err.get("decline_code"))
    if replayed and status >= 500:
        raise UnknownOutcome(message, http_status=status, code="replayed_server_error")
    if kind == "idempotency_error":
        if status == 409 or should_retry:
            raise TransientError(message, http_status=status, code="idempotency_key_in_use")
        reused = f"Idempotency-Key reused with other parameters: {message}"
        raise PermanentError(reused, http_status=status, code="idempotency_key_reused")
    code = str(code or kind or "stripe_error")
    if kind == "rate_limit_error":
        status = 429
    error = error_for_status(status, response.headers, message, code, should_retry=should_retry)
    if error is None:  # a 1xx or 3xx: nothing Stripe answers on purpose
        raise UnknownOutcome(message, http_status=status, code="unexpected_status")
    raise error


def form_encode(params: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Stripe's form encoding: `{"metadata": {"k": "v"}}` → `metadata[k]=v`, lists → `name[]`."""
    flat: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            for inner, item in value.items():
                flat[f"{name}[{inner}]"] = _text(item)
        elif isinstance(value, list | tuple):
            flat[f"{name}[]"] = [_text(item) for item in value]
        else:
            flat[name] = _text(value)
    return flat


def intent_result(
    intent: Mapping[str, Any], operation_reference: str | None = None
) -> PaymentResult:
    """A PaymentIntent as a `PaymentResult`; refunds read `amount_refunded` (or the charge's)."""
    received = int(intent.get("amount_received") or 0)
    refunded = _amount_refunded(intent)
    error = intent.get("last_payment_error")
    decline = None
    status = PaymentStatus.PENDING  # processing
    match intent.get("status"):
        case "succeeded":
            status = captured_status(received, refunded)
        case "requires_capture":
            status = PaymentStatus.AUTHORIZED
        case "canceled":
            status = PaymentStatus.VOIDED
        case "requires_payment_method":
            status = PaymentStatus.DECLINED
            known = error if isinstance(error, Mapping) else {}
            decline = Decline(
                str(known.get("code") or "requires_payment_method"),
                str(known.get("message") or "the payment method was not accepted"),
                known.get("decline_code"),
            )
        case "requires_action" | "requires_confirmation":
            status = PaymentStatus.ACTION_REQUIRED
        case "processing":
            status = PaymentStatus.PENDING
        case other:
            raise ValueError(f"unknown PaymentIntent status {other!r}")
    metadata = intent.get("metadata")
    return PaymentResult(
        status=status,
        reference=str(intent["id"]),
        amount=int(intent["amount"]),
        currency=str(intent["currency"]).lower(),
        amount_captured=received,
        amount_refunded=refunded,
        operation_reference=operation_reference,
        decline=decline,
        idempotency_key=metadata.get(KEY_METADATA) if isinstance(metadata, Mapping) else None,
        raw=dict(intent),
    )


class StripePayments:
    """The `PaymentProvider` for Stripe (and the sandbox's Stripe-compatible API)."""

    name = "stripe"
    key_retention = timedelta(hours=24)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        http: HttpClient,
        *,
        stripe_version: str,
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = http
        self.stripe_version = stripe_version
        self.deadline = deadline

    def authorize(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Create and confirm a PaymentIntent with manual capture: one request."""
        return self._create(request, idempotency_key, "manual")

    def charge(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """Create and confirm a PaymentIntent that captures at once: one request."""
        return self._create(request, idempotency_key, "automatic")

    def capture(self, request: CaptureRequest, idempotency_key: str) -> PaymentResult:
        """Capture an authorization, in full or `amount` (the rest is released)."""
        form = {"amount_to_capture": request.amount}
        path = f"/v1/payment_intents/{path_segment(request.reference)}/capture"
        return self._intent_call(path, form, idempotency_key, request.reference)

    def refund(self, request: RefundRequest, idempotency_key: str) -> PaymentResult:
        """Refund `amount`, or all that is left; the result is the PaymentIntent afterwards."""
        form = {
            "payment_intent": request.reference,
            "amount": request.amount,
            "metadata": {KEY_METADATA: idempotency_key},
            # The refund comes back with its PaymentIntent and charge: one request tells the totals.
            "expand": ["payment_intent", "payment_intent.latest_charge"],
        }
        try:
            refund = self._post("/v1/refunds", form, idempotency_key)
        except _Declined as declined:
            return _declined_result(declined, request.reference, 0, request.currency or "")
        return refund_result(refund, request.reference)

    def void(self, request: VoidRequest, idempotency_key: str) -> PaymentResult:
        """Cancel an uncaptured PaymentIntent."""
        path = f"/v1/payment_intents/{path_segment(request.reference)}/cancel"
        return self._intent_call(path, {}, idempotency_key, request.reference)

    def retrieve(self, reference: str) -> PaymentResult | None:
        """GET the PaymentIntent; None when Stripe does not know it (404)."""
        path = f"/v1/payment_intents/{path_segment(reference)}"
        try:
            intent = self._get(path, {"expand[]": "latest_charge"})
        except PermanentError as exc:
            if exc.http_status == 404:
                return None
            raise
        return intent_result(intent)

    def find_by_key(self, idempotency_key: str) -> PaymentResult | None:
        """Search PaymentIntents by `metadata['conveyor_key']`; the first match, if any."""
        escaped = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
        query = f"metadata['{KEY_METADATA}']:'{escaped}'"
        params = {"query": query, "expand[]": "data.latest_charge"}
        found = self._get("/v1/payment_intents/search", params)
        data = found.get("data") or []
        return intent_result(data[0]) if data else None

    def _create(self, request: ChargeRequest, key: str, capture_method: str) -> PaymentResult:
        form = {
            "amount": request.amount,
            "currency": request.currency,
            "payment_method": request.payment_method,
            "payment_method_types": ["card"],
            "confirm": True,
            "capture_method": capture_method,
            "description": request.description,
            "metadata": {KEY_METADATA: key},
        }
        try:
            return intent_result(self._post("/v1/payment_intents", form, key))
        except _Declined as declined:
            return _declined_result(declined, "", request.amount, request.currency)

    def _intent_call(
        self, path: str, form: Mapping[str, Any], key: str, reference: str
    ) -> PaymentResult:
        try:
            return intent_result(self._post(path, form, key))
        except _Declined as declined:
            return _declined_result(declined, reference, 0, "")

    def _post(self, path: str, form: Mapping[str, Any], key: str) -> dict[str, Any]:
        return self._send("POST", path, key=key, data=form_encode(form))

    def _get(self, path: str, params: Mapping[str, str | list[str]] | None) -> dict[str, Any]:
        return self._send("GET", path, params=params)

    def _send(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, str | list[str]] | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Stripe-Version": self.stripe_version,
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        response = self.http.send(
            method,
            self.base_url + path,
            headers=headers,
            params=params,
            form=data if method == "POST" else None,
            deadline=self.deadline,
        )
        answer = classify(response)
        if isinstance(answer, Decline):
            raise _Declined(answer, _error_object(response.body).get("payment_intent"))
        return answer

    def settle(
        self, pending: PendingPayment, events: Sequence[Mapping[str, Any]]
    ) -> PaymentResult | None:
        """Look the payment (or the refund) up: Stripe can always say where it stands."""
        if pending.operation == "refund" and pending.operation_reference:
            path = f"/v1/refunds/{path_segment(pending.operation_reference)}"
            params = {"expand[]": ["payment_intent", "payment_intent.latest_charge"]}
            return refund_result(self._get(path, params), pending.reference)
        return self.retrieve(pending.reference)


def refund_result(refund: Mapping[str, Any], reference: str) -> PaymentResult:
    """A Stripe Refund as a `PaymentResult`: the payment's status, the refund's own beside it.

    `succeeded` moved money back (the refund's own amount and currency go to the ledger);
    `pending` and `requires_action` have not settled; `failed` and `canceled` never will.
    """
    status = {
        "succeeded": PaymentStatus.REFUNDED,
        "pending": PaymentStatus.PENDING,
        "requires_action": PaymentStatus.PENDING,
        "failed": PaymentStatus.DECLINED,
        "canceled": PaymentStatus.DECLINED,
    }.get(str(refund.get("status")))
    if status is None:
        raise ValueError(f"unknown refund status {refund.get('status')!r}")
    intent = refund.get("payment_intent")
    # The payment's own figures, when Stripe sent the PaymentIntent along (expanded): what it
    # was for, what was captured, what has been refunded in all. Without it only the refund's
    # own amount is known, and the payment's totals are left at what the refund says.
    payment = intent_result(intent) if isinstance(intent, Mapping) else None
    if payment is not None:
        reference = payment.reference
    decline = None
    if status is PaymentStatus.DECLINED:
        reason = str(refund.get("failure_reason") or refund.get("status"))
        decline = Decline("refund_failed", f"the refund did not go through: {reason}")
    amount = int(refund["amount"])
    if status is PaymentStatus.REFUNDED and payment is not None:
        # The payment's state, as Adyen's results give it: 300 of 1000 back is partial.
        whole = payment.amount_refunded >= payment.amount_captured
        status = PaymentStatus.REFUNDED if whole else PaymentStatus.PARTIALLY_REFUNDED
    return PaymentResult(
        status=status,
        reference=reference,
        amount=payment.amount if payment is not None else amount,
        currency=str(refund["currency"]).lower(),
        amount_captured=payment.amount_captured if payment is not None else 0,
        amount_refunded=payment.amount_refunded if payment is not None else amount,
        operation_reference=str(refund["id"]),
        operation_amount=amount,
        operation_status=str(refund.get("status")),
        decline=decline,
        raw=dict(refund),
    )


def _declined_result(
    declined: _Declined, reference: str, amount: int, currency: str
) -> PaymentResult:
    intent = declined.intent
    if isinstance(intent, Mapping) and "id" in intent:
        result = intent_result(intent)
        reference, amount, currency = result.reference, result.amount, result.currency
    return PaymentResult(
        status=PaymentStatus.DECLINED,
        reference=reference,
        amount=amount,
        currency=currency.lower(),
        decline=declined.decline,
        raw=dict(intent) if isinstance(intent, Mapping) else {},
    )


def _error_object(body: object) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _amount_refunded(intent: Mapping[str, Any]) -> int:
    # Stripe keeps it on the charge (when expanded); the sandbox also puts it on the intent.
    charge = intent.get("latest_charge")
    if isinstance(charge, Mapping) and isinstance(charge.get("amount_refunded"), int):
        return int(charge["amount_refunded"])
    refunded = intent.get("amount_refunded")
    return refunded if isinstance(refunded, int) else 0


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
