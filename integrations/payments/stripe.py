"""Stripe PaymentIntents and refunds, one request per operation, through our one HTTP client.

Every POST carries the caller's `Idempotency-Key` and is form-encoded (`metadata[k]=v`). Creates
also put the key in `metadata[conveyor_key]`, so `find_by_key` can search for a payment whose
answer was lost. Note that Stripe's search is eventually consistent: a payment made seconds ago
may not be found yet.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from integrations.status import stripe_should_retry

KEY_METADATA = "conveyor_key"


class _Declined(Exception):
    """A card error met inside an operation; the operation returns it as a DECLINED result."""

    def __init__(self, decline: Decline, intent: Mapping[str, Any] | None) -> None:
        super().__init__(decline.message)
        self.decline = decline
        self.intent = intent


def classify(
    error: IntegrationError, *, should_retry: bool | None = None, replayed: bool = False
) -> Decline | IntegrationError:
    """What a failed Stripe call means: a decline (a result), or the error to raise.

    `should_retry` is the `Stripe-Should-Retry` header (it wins over the type, as in Stripe's
    SDKs) and `replayed` is `Idempotent-Replayed: true`: a replayed 500 will be replayed on every
    retry with this key, and Stripe says a 500's outcome is indeterminate, so it is an
    UnknownOutcome for reconciliation rather than a transient blip.
    """
    if error.http_status is None:
        return error  # no answer at all: the HTTP client already knows what that means
    err = _error_object(body_of(error))
    kind, code = str(err.get("type") or ""), err.get("code")
    message = str(err.get("message") or error.message)
    if kind == "card_error" or error.http_status == 402:
        return Decline(str(code or "card_declined"), message, err.get("decline_code"))
    if replayed and error.http_status >= 500:
        return restated(error, UnknownOutcome, code="replayed_server_error", message=message)
    if kind == "idempotency_error":
        if error.http_status == 409 or should_retry:
            return restated(error, TransientError, code="idempotency_key_in_use", message=message)
        reused = f"Idempotency-Key reused with other parameters: {message}"
        return restated(error, PermanentError, code="idempotency_key_reused", message=reused)
    code = str(code or kind or "stripe_error")
    if kind == "rate_limit_error" or error.http_status == 429:
        return restated(error, RateLimited, code=code, message=message)
    if should_retry is not None:
        chosen: type[IntegrationError] = TransientError if should_retry else PermanentError
        return restated(error, chosen, code=code, message=message)
    if kind == "api_error" or error.http_status >= 500 or error.http_status in (408, 409):
        return restated(error, TransientError, code=code, message=message)
    return restated(error, PermanentError, code=code, message=message)


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
    status = PaymentStatus.PENDING  # processing, requires_action, requires_confirmation
    match intent.get("status"):
        case "succeeded" if refunded and refunded >= received:
            status = PaymentStatus.REFUNDED
        case "succeeded" if refunded:
            status = PaymentStatus.PARTIALLY_REFUNDED
        case "succeeded":
            status = PaymentStatus.CAPTURED
        case "requires_capture":
            status = PaymentStatus.AUTHORIZED
        case "canceled":
            status = PaymentStatus.VOIDED
        case "requires_payment_method" if isinstance(error, Mapping):
            status = PaymentStatus.DECLINED
            decline = Decline(
                str(error.get("code") or "card_declined"),
                str(error.get("message") or "declined"),
                error.get("decline_code"),
            )
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
        path = f"/v1/payment_intents/{request.reference}/capture"
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
        return intent_result(refund["payment_intent"], operation_reference=str(refund["id"]))

    def void(self, request: VoidRequest, idempotency_key: str) -> PaymentResult:
        """Cancel an uncaptured PaymentIntent."""
        path = f"/v1/payment_intents/{request.reference}/cancel"
        return self._intent_call(path, {}, idempotency_key, request.reference)

    def retrieve(self, reference: str) -> PaymentResult | None:
        """GET the PaymentIntent; None when Stripe does not know it (404)."""
        try:
            intent = self._get(f"/v1/payment_intents/{reference}", {"expand[]": "latest_charge"})
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

    def _get(self, path: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        return self._send("GET", path, params=params)

    def _send(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Stripe-Version": self.stripe_version,
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        probe = HeaderProbe(stripe_should_retry)
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                headers=headers,
                params=params,
                data=data,
                deadline=self.deadline,
                retry_hint=probe,
            )
        except IntegrationError as exc:
            verdict = classify(
                exc,
                should_retry=stripe_should_retry(probe.headers),
                replayed=(probe.header("Idempotent-Replayed") or "").lower() == "true",
            )
            if isinstance(verdict, Decline):
                raise _Declined(verdict, _error_object(body_of(exc)).get("payment_intent")) from exc
            if verdict is exc:
                raise
            raise verdict from exc
        body = response.body
        if not isinstance(body, dict):
            raise UnknownOutcome(f"Stripe answered {method} {path} with a non-object body")
        return body


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
