"""An Adyen Checkout-compatible subset (API v71) under `/adyen`: payments and their modifications.

JSON bodies, `X-API-Key`, and an optional `Idempotency-Key` of at most 64 characters. A refusal
is HTTP 200 with `resultCode: Refused`. Modifications (captures, refunds, cancels) answer 201
`received` and, unlike Adyen (which reports their outcome by webhook), take effect at once.
Adyen has no GET for a payment: `GET /adyen/v71/payments/{pspReference}` is the sandbox's own,
so that reconciliation can be tested.

Two answers are the sandbox's reading of Adyen's documentation: a key still in flight gets
422 errorCode 704 with `transient-error: true` (retry later, same key); a key reused with
another body gets the same 704 without that header (do not retry).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from typing import Any

from integrations.sandbox import adyen_params as params
from integrations.sandbox.charges import fingerprint
from integrations.sandbox.errors import ApiError, adyen_error
from integrations.sandbox.idempotency import Outcome, Refusals, perform_once
from integrations.sandbox.psp import BookError, Payment, PaymentBook, Refusal, Stage
from integrations.sandbox.wire import Backend, Reply, Request

PROVIDER = "adyen"
MAX_KEY_LENGTH = 64
# Stored-card tokens that are refused: token → (refusalReason, refusalReasonCode).
REFUSED_TOKENS = {
    "refused_card": ("Refused", "2"),
    "blocked_card": ("Blocked Card", "5"),
    "insufficient_funds": ("Not enough balance", "12"),
}
STATUSES = {
    Stage.OPEN: "Received",
    Stage.DECLINED: "Refused",
    Stage.AUTHORIZED: "Authorised",
    Stage.CAPTURED: "Captured",
    Stage.CANCELED: "Cancelled",
    Stage.PROCESSING: "Received",
    Stage.REQUIRES_ACTION: "RedirectShopper",
}
IN_PROGRESS = "request already processed or in progress"

REFUSALS = Refusals(
    "adyen",
    reused=lambda: adyen_error(
        422, "704", f"{IN_PROGRESS}: this Idempotency-Key was used with another request body"
    ),
    in_use=lambda: adyen_error(422, "704", IN_PROGRESS, headers={"transient-error": "true"}),
)


def create_payment(server: Backend, request: Request) -> Reply:
    """POST /adyen/v71/payments: authorise (and with captureDelayHours 0, capture)."""
    _authenticate(server, request)
    key = _key(request)
    body = params.json_object(request.raw)
    spec = params.payment_spec(body)
    book = server.state.book

    def perform(performed: int) -> Outcome:
        psp = _psp_reference(key, performed, "payment")
        book.add(
            Payment(
                id=psp,
                provider=PROVIDER,
                amount=spec.value,
                currency=spec.currency.lower(),
                payment_method=spec.token,
                manual_capture=spec.capture_delay_hours != 0,
                metadata=spec.metadata,
                reference=spec.reference,
            )
        )
        refusal = _refusal(spec.token)
        book.confirm(psp, refusal)
        answer: dict[str, Any] = {
            "pspReference": psp,
            "resultCode": "Authorised" if refusal is None else "Refused",
            "amount": {"currency": spec.currency, "value": spec.value},
            "merchantReference": spec.reference,
        }
        if refusal is not None:
            answer |= {"refusalReason": refusal.message, "refusalReasonCode": refusal.code}
        return Outcome(200, answer, effect=refusal is None)

    return _run(server, request, key, body, perform)


def modify(kind: str) -> Callable[[Backend, Request], Reply]:
    """POST /adyen/v71/payments/{pspReference}/{captures|refunds|cancels}."""

    def endpoint(server: Backend, request: Request) -> Reply:
        _authenticate(server, request)
        key = _key(request)
        body = params.json_object(request.raw)
        merchant_account = params.merchant_account(body)
        amount = None if kind == "cancels" else params.amount(body)
        payment_id = request.params["pspReference"]
        book = server.state.book

        def perform(performed: int) -> Outcome:
            psp_reference = _psp_reference(key, performed, f"{kind}:{payment_id}")
            try:
                moved = _apply(book, kind, payment_id, amount)
            except BookError as exc:
                raise _book_error(exc) from exc
            book.note_modification(payment_id, psp_reference, kind, moved)
            answer: dict[str, Any] = {
                "merchantAccount": merchant_account,
                "paymentPspReference": payment_id,
                "pspReference": psp_reference,
                "reference": body.get("reference"),
                "status": "received",
            }
            if amount is not None:
                answer["amount"] = {"currency": amount[1], "value": amount[0]}
            return Outcome(201, answer, effect=True)

        return _run(server, request, key, body, perform)

    return endpoint


MODIFICATION_TYPES = {"captures": "capture", "refunds": "refund", "cancels": "void"}


def get_payment(server: Backend, request: Request) -> Reply:
    """GET /adyen/v71/payments/{pspReference} (sandbox only): the payment's state and amounts."""
    _authenticate(server, request)
    time.sleep(request.latency_s)
    try:
        payment = server.state.book.get(request.params["pspReference"])
    except BookError:
        payment = None
    if payment is None or payment.provider != PROVIDER:
        raise adyen_error(404, "000", "No such payment in the sandbox.", "validation")
    return Reply(200, render_payment(payment))


def admin_payment(book: PaymentBook, amount: int, currency: str, metadata: dict[str, str]) -> Any:
    """A captured Adyen payment made behind Conveyor's back."""
    payment = Payment(
        id=_psp_reference(None, 0, "admin"),
        provider=PROVIDER,
        amount=amount,
        currency=currency,
        stage=Stage.CAPTURED,
        payment_method="stored_card",
        captured=amount,
        metadata=metadata,
        reference=metadata.get("conveyor_key"),
    )
    return render_payment(book.add(payment))


def render_payment(payment: Payment) -> dict[str, Any]:
    """The sandbox's view of an Adyen payment: status and authorised, captured, refunded amounts."""
    currency = payment.currency.upper()
    answer: dict[str, Any] = {
        "pspReference": payment.id,
        "merchantReference": payment.reference,
        "status": STATUSES[payment.stage],
        "amount": {"currency": currency, "value": payment.amount},
        "capturedAmount": {"currency": currency, "value": payment.captured},
        "refundedAmount": {"currency": currency, "value": payment.refunded},
        "metadata": dict(payment.metadata),
        # Each applied modification by its own pspReference, so a look-up can tell which of
        # several captures or refunds of one payment took effect (sandbox only).
        "modifications": [
            {
                "pspReference": psp,
                "type": MODIFICATION_TYPES[kind],
                "amount": {"currency": currency, "value": moved},
                "status": "applied",
            }
            for psp, kind, moved in payment.modifications
        ],
    }
    if payment.refusal is not None:
        answer |= {
            "refusalReason": payment.refusal.message,
            "refusalReasonCode": payment.refusal.code,
        }
    return answer


def _run(
    server: Backend,
    request: Request,
    key: str | None,
    body: dict[str, Any],
    perform: Callable[[int], Outcome],
) -> Reply:
    if key is not None:
        digest = fingerprint([request.method, request.path, body])
        return perform_once(server.state, REFUSALS, key, digest, request, perform)
    # Without a key Adyen performs every time; each effect is counted under its own label.
    time.sleep(request.latency_s)
    outcome = perform(0)
    if outcome.effect:
        server.state.add_effect(f"no-key:{outcome.body.get('pspReference')}")
    return Reply(outcome.status, outcome.body, outcome.headers)


def _apply(book: PaymentBook, kind: str, payment_id: str, amount: tuple[int, str] | None) -> int:
    """Apply a modification to the payment; the minor units it moved."""
    payment = book.get(payment_id)
    if payment.provider != PROVIDER:
        raise BookError("missing", f"no such payment: {payment_id}")
    if amount is not None and amount[1].lower() != payment.currency:
        raise BookError("amount_too_large", f"the payment is in {payment.currency.upper()}")
    value = None if amount is None else amount[0]
    if kind == "captures":
        return book.capture(payment_id, value).captured
    if kind == "refunds":
        return book.refund(payment_id, value)[1]
    book.cancel(payment_id)
    return 0


def _book_error(exc: BookError) -> ApiError:
    if exc.reason == "missing":
        return adyen_error(422, "167", "Original pspReference required for this operation")
    if exc.reason in ("amount_too_large", "already_refunded"):
        return adyen_error(422, "137", f"Invalid amount specified: {exc.message}")
    return adyen_error(422, "sandbox_invalid_state", exc.message)


def _authenticate(server: Backend, request: Request) -> None:
    given = (request.header("X-API-Key") or "").encode()
    if not hmac.compare_digest(given, server.keys.adyen.encode()):
        raise adyen_error(401, "000", "HTTP Status Response - Unauthorized", "security")


def _key(request: Request) -> str | None:
    key = request.header("Idempotency-Key")
    if key is not None and len(key) > MAX_KEY_LENGTH:
        raise adyen_error(422, "702", f"Idempotency-Key is at most {MAX_KEY_LENGTH} characters.")
    return key or None


def _refusal(token: str) -> Refusal | None:
    refused_as = REFUSED_TOKENS.get(token)
    return None if refused_as is None else Refusal(code=refused_as[1], message=refused_as[0])


def _psp_reference(key: str | None, performed: int, what: str) -> str:
    """16 characters like Adyen's, from the key when there is one, so a replay names the same."""
    seed = f"{what}:{key}#{performed}" if key is not None else f"{what}:{uuid.uuid4()}"
    digest = hashlib.sha256(seed.encode()).digest()
    return base64.b32encode(digest).decode()[:16]
