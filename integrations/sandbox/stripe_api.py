"""A Stripe-compatible subset: PaymentIntents and refunds.

Form-encoded bodies, `Authorization: Bearer <key>`, and an `Idempotency-Key` on every POST
(Stripe makes it optional; the sandbox insists, because Conveyor always sends one).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from integrations.sandbox import stripe_params as params
from integrations.sandbox.cards import DECLINES
from integrations.sandbox.charges import fingerprint
from integrations.sandbox.errors import ApiError, invalid_request
from integrations.sandbox.form import check_known, parse_form
from integrations.sandbox.idempotency import Outcome, Refusals, perform_once
from integrations.sandbox.psp import BookError, Payment, PaymentBook, Refusal, Stage
from integrations.sandbox.stripe_objects import card_error, charge_id, render_intent
from integrations.sandbox.wire import Backend, Reply, Request

PROVIDER = "stripe"
T = TypeVar("T")
MAX_KEY_LENGTH = 255
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Stripe's test payment methods that leave a PaymentIntent unsettled.
WAITING = {
    "pm_card_processing": Stage.PROCESSING,
    "pm_card_authenticationRequired": Stage.REQUIRES_ACTION,
    "pm_card_threeDSecure2Required": Stage.REQUIRES_ACTION,
}
CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "payment_method_types",
        "confirm",
        "capture_method",
        "metadata",
        "description",
    }
)
CONFIRM_PARAMS = frozenset({"payment_method"})
CAPTURE_PARAMS = frozenset({"amount_to_capture"})
CANCEL_PARAMS = frozenset({"cancellation_reason"})
REFUND_PARAMS = frozenset({"payment_intent", "amount", "metadata", "reason", "expand"})
# The one search form supported: metadata['name']:'value' (a quote inside is escaped as \').
SEARCH_QUERY = re.compile(r"^metadata\['(\w+)'\]:'((?:[^'\\]|\\.)*)'$")

REFUSALS = Refusals(
    "stripe",
    reused=lambda: ApiError(
        400,
        "idempotency_error",
        "idempotency_key_reused",
        "Keys for idempotent requests can only be used with the same parameters they were "
        "first used with.",
    ),
    in_use=lambda: ApiError(
        409,
        "idempotency_error",
        "idempotency_key_in_use",
        "There is currently another in-progress request using this Idempotency-Key; retry later.",
        headers={"Stripe-Should-Retry": "true"},
    ),
)


def create_intent(server: Backend, request: Request) -> Reply:
    """POST /v1/payment_intents: create, and with confirm=true authorize (and capture)."""
    key, form = _begin(server, request, CREATE_PARAMS)
    spec = params.intent_spec(form)
    book = server.state.book

    def perform(performed: int) -> Outcome:
        payment = book.add(
            Payment(
                id=_object_id("pi", key, performed),
                provider=PROVIDER,
                amount=spec.amount,
                currency=spec.currency,
                payment_method=spec.payment_method,
                manual_capture=spec.manual_capture,
                metadata=spec.metadata,
                description=spec.description,
            )
        )
        if spec.confirm:
            return _confirm(book, payment.id, None)
        return Outcome(200, render_intent(payment), effect=False)

    return _once(server, request, key, form, perform)


def confirm_intent(server: Backend, request: Request) -> Reply:
    """POST /v1/payment_intents/{id}/confirm."""
    key, form = _begin(server, request, CONFIRM_PARAMS)
    method = params.payment_method(form.get("payment_method"))
    intent_id = request.params["id"]
    return _once(
        server, request, key, form, lambda _: _confirm(server.state.book, intent_id, method)
    )


def capture_intent(server: Backend, request: Request) -> Reply:
    """POST /v1/payment_intents/{id}/capture, in full or `amount_to_capture`."""
    key, form = _begin(server, request, CAPTURE_PARAMS)
    amount = params.amount(form, "amount_to_capture", required=False)
    intent_id = request.params["id"]

    def perform(_: int) -> Outcome:
        book = server.state.book
        _own(book, intent_id)
        payment = _worded(intent_id, "amount_to_capture", lambda: book.capture(intent_id, amount))
        return Outcome(200, render_intent(payment), effect=True)

    return _once(server, request, key, form, perform)


def cancel_intent(server: Backend, request: Request) -> Reply:
    """POST /v1/payment_intents/{id}/cancel: release an authorization."""
    key, form = _begin(server, request, CANCEL_PARAMS)
    intent_id = request.params["id"]

    def perform(_: int) -> Outcome:
        book = server.state.book
        _own(book, intent_id)
        payment = _worded(intent_id, None, lambda: book.cancel(intent_id))
        return Outcome(200, render_intent(payment), effect=True)

    return _once(server, request, key, form, perform)


def create_refund(server: Backend, request: Request) -> Reply:
    """POST /v1/refunds: refund `amount` (default: all that is left) of a PaymentIntent."""
    key, form = _begin(server, request, REFUND_PARAMS)
    intent_id = form.get("payment_intent")
    if not isinstance(intent_id, str) or not intent_id:
        raise invalid_request("parameter_missing", "Missing required param: payment_intent.")
    amount = params.amount(form, "amount", required=False)
    expand = _expand(form.get("expand", []), {"payment_intent", "payment_intent.latest_charge"})
    metadata = params.metadata(form)

    def refund(performed: int) -> Outcome:
        book = server.state.book
        _own(book, intent_id)
        payment, refunded = _worded(intent_id, "amount", lambda: book.refund(intent_id, amount))
        body = {
            "id": _object_id("re", key, performed),
            "object": "refund",
            "amount": refunded,
            "currency": payment.currency,
            "status": "succeeded",
            "payment_intent": (
                render_intent(payment, "payment_intent.latest_charge" in expand)
                if expand
                else payment.id
            ),
            "charge": charge_id(payment.id),
            "metadata": metadata,
            "reason": form.get("reason"),
        }
        return Outcome(200, body, effect=True)

    return _once(server, request, key, form, refund)


def get_intent(server: Backend, request: Request) -> Reply:
    """GET /v1/payment_intents/{id}."""
    _authenticate(server, request)
    expand = _expand(request.query.get("expand[]", []), {"latest_charge"})
    time.sleep(request.latency_s)
    payment = _own(server.state.book, request.params["id"])
    return Reply(200, render_intent(payment, bool(expand)))


def search_intents(server: Backend, request: Request) -> Reply:
    """GET /v1/payment_intents/search?query=metadata['name']:'value'."""
    _authenticate(server, request)
    query = request.query.get("query", [""])[-1]
    found = SEARCH_QUERY.match(query.strip())
    if found is None:
        raise invalid_request(
            "parameter_invalid", "The sandbox searches metadata['name']:'value' only.", "query"
        )
    name, value = found.group(1), re.sub(r"\\(.)", r"\1", found.group(2))
    charge = bool(_expand(request.query.get("expand[]", []), {"data.latest_charge"}))
    time.sleep(request.latency_s)
    data = [render_intent(p, charge) for p in server.state.book.find(PROVIDER, name, value)]
    return Reply(
        200,
        {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "next_page": None,
            "data": data,
        },
    )


def admin_intent(book: PaymentBook, amount: int, currency: str, metadata: dict[str, str]) -> Any:
    """A succeeded PaymentIntent made behind Conveyor's back (a charge its DB never recorded)."""
    payment = Payment(
        id=f"pi_{uuid.uuid4().hex[:24]}",
        provider=PROVIDER,
        amount=amount,
        currency=currency,
        stage=Stage.CAPTURED,
        payment_method="pm_card_visa",
        captured=amount,
        metadata=metadata,
    )
    return render_intent(book.add(payment))


def _expand(values: object, allowed: set[str]) -> set[str]:
    if not isinstance(values, list) or not set(values) <= allowed:
        shown = ", ".join(sorted(allowed))
        raise invalid_request("parameter_invalid", f"expand[] may name {shown}.", "expand")
    return set(values)


def _begin(server: Backend, request: Request, known: frozenset[str]) -> tuple[str, dict[str, Any]]:
    _authenticate(server, request)
    key = request.header("Idempotency-Key")
    if not key:
        raise invalid_request(
            "idempotency_key_missing", "Every POST to the sandbox carries an Idempotency-Key."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise invalid_request(
            "idempotency_key_invalid", f"Idempotency-Key is at most {MAX_KEY_LENGTH} characters."
        )
    # As Stripe's own mock server does, a POST must say it is a form, even with no body.
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise invalid_request(
            "invalid_content_type", f"POST bodies are {FORM_CONTENT_TYPE}; send that Content-Type."
        )
    form = parse_form(request.raw)
    check_known(form, known)
    return key, form


def _once(
    server: Backend,
    request: Request,
    key: str,
    form: dict[str, Any],
    perform: Callable[[int], Outcome],
) -> Reply:
    # Same key on another endpoint, or with other parameters, is a mismatch.
    digest = fingerprint([request.method, request.path, form])
    return perform_once(server.state, REFUSALS, key, digest, request, perform)


def _authenticate(server: Backend, request: Request) -> None:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    given = token.strip().encode()
    known = any(hmac.compare_digest(given, key.encode()) for key in server.keys.stripe)
    if scheme.lower() != "bearer" or not known:
        raise ApiError(
            401,
            "authentication_error",
            "invalid_api_key",
            "Send Authorization: Bearer <a sandbox Stripe key>.",
            headers={"WWW-Authenticate": 'Bearer realm="sandbox"'},
        )


def _confirm(book: PaymentBook, intent_id: str, method: str | None) -> Outcome:
    payment = _own(book, intent_id)
    chosen = method or payment.payment_method
    if chosen is None:
        raise invalid_request(
            "payment_intent_unexpected_state", "This PaymentIntent has no payment method."
        )
    refusal = _refusal(chosen)
    waits = WAITING.get(chosen)
    payment = _worded(intent_id, None, lambda: book.confirm(intent_id, refusal, chosen, waits))
    if refusal is not None:
        body = card_error(refusal)
        body["error"]["payment_intent"] = render_intent(payment)
        raise ApiError(402, "card_error", refusal.code, refusal.message, body=body)
    return Outcome(200, render_intent(payment), effect=True)


def _own(book: PaymentBook, intent_id: str) -> Payment:
    """One of Stripe's payments: an Adyen one is as unknown here as it would be at Stripe."""
    payment = _worded(intent_id, None, lambda: book.get(intent_id))
    if payment.provider != PROVIDER:
        raise _book_error(BookError("missing", f"no such payment: {intent_id}"), intent_id, None)
    return payment


def _worded(intent_id: str, param: str | None, operation: Callable[[], T]) -> T:
    """Run a book operation; its refusal becomes Stripe's error naming `param`."""
    try:
        return operation()
    except BookError as exc:
        raise _book_error(exc, intent_id, param) from exc


def _book_error(exc: BookError, intent_id: str, param: str | None) -> ApiError:
    if exc.reason == "missing":
        return ApiError(
            404,
            "invalid_request_error",
            "resource_missing",
            f"No such payment_intent: '{intent_id}'",
            param="intent",
        )
    if exc.reason == "amount_too_large":
        return invalid_request("amount_too_large", exc.message, param)
    if exc.reason == "already_refunded":
        return invalid_request("charge_already_refunded", exc.message)
    return invalid_request("payment_intent_unexpected_state", exc.message)


def _refusal(payment_method: str) -> Refusal | None:
    decline_code = DECLINES.get(payment_method)
    if decline_code is None:
        return None
    return Refusal("card_declined", "Your card was declined.", decline_code)


def _object_id(prefix: str, key: str, performed: int) -> str:
    """Ids follow from the key, so a replay names the same object; an expired key makes anew."""
    seed = key if performed == 0 else f"{key}#{performed}"
    return f"{prefix}_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
