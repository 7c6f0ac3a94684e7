"""Each adapter's one error-mapping function, table-driven, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from integrations.errors import (
    IntegrationError,
    PermanentError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
from integrations.http import HttpResponse
from integrations.payments import adyen, stripe
from integrations.payments.base import Decline


def answer(
    status: int, body: Any, should_retry: bool | None = None, **headers: str
) -> HttpResponse:
    """A provider's answer as our HTTP client returns it (any status)."""
    sent = dict(headers)
    if should_retry is not None:
        sent["Stripe-Should-Retry"] = "true" if should_retry else "false"
        sent["transient-error"] = "true" if should_retry else "false"
    text = body if isinstance(body, str) else ""
    return HttpResponse(status, sent, None if isinstance(body, str) else body, text, 5)


def verdict_of(classify: Any, response: HttpResponse) -> Any:
    """What `classify` returns, or the error it raises."""
    try:
        return classify(response)
    except IntegrationError as exc:
        return exc


def stripe_error(type_: str, code: str | None = None, **extra: Any) -> Any:
    return {"error": {"type": type_, "code": code, "message": f"{type_} message", **extra}}


def adyen_error(status: int, code: str, error_type: str = "validation") -> Any:
    return {"status": status, "errorCode": code, "message": "adyen says", "errorType": error_type}


@pytest.mark.parametrize(
    ("status", "body", "hint", "replayed", "expected", "code"),
    [
        (402, stripe_error("card_error", "card_declined", decline_code="x"), None, False,
         Decline, "card_declined"),
        (409, stripe_error("idempotency_error"), True, False,
         TransientError, "idempotency_key_in_use"),
        (400, stripe_error("idempotency_error"), None, False,
         PermanentError, "idempotency_key_reused"),
        (429, stripe_error("rate_limit_error", "rate_limit"), None, False,
         RateLimited, "rate_limit"),
        (500, stripe_error("api_error"), None, False, TransientError, "api_error"),
        (503, stripe_error("api_error", "sandbox_fault"), False, False,
         PermanentError, "sandbox_fault"),
        (500, stripe_error("api_error"), None, True,
         UnknownOutcome, "replayed_server_error"),
        (400, stripe_error("invalid_request_error", "amount_too_large"), None, False,
         PermanentError, "amount_too_large"),
        (400, stripe_error("invalid_request_error", "lock_timeout"), True, False,
         TransientError, "lock_timeout"),
        (404, stripe_error("invalid_request_error", "resource_missing"), None, False,
         PermanentError, "resource_missing"),
        (401, stripe_error("authentication_error"), None, False,
         PermanentError, "authentication_error"),
        (502, "<html>bad gateway</html>", None, False, TransientError, "stripe_error"),
    ],
)  # fmt: skip
def test_stripe_classify(
    status: int,
    body: Any,
    hint: bool | None,
    replayed: bool,
    expected: type[Any],
    code: str,
) -> None:
    # Given the answer Stripe gave
    headers = {"Idempotent-Replayed": "true"} if replayed else {}

    # When it is classified
    verdict = verdict_of(stripe.classify, answer(status, body, hint, **headers))

    # Then: the class and code, with the status kept for errors
    assert type(verdict) is expected
    assert verdict.code == code
    if isinstance(verdict, IntegrationError):
        assert verdict.http_status == status


def test_stripe_classify_keeps_retry_after() -> None:
    # Given a 429 with Retry-After
    limited = answer(429, stripe_error("rate_limit_error"), None, **{"Retry-After": "3"})

    # When / Then
    verdict = verdict_of(stripe.classify, limited)
    assert isinstance(verdict, RateLimited) and verdict.retry_after == 3.0


@pytest.mark.parametrize("body", [None, [], "<html>ok</html>", 5])
@pytest.mark.parametrize("classify", [stripe.classify, adyen.classify])
def test_a_2xx_that_is_not_an_object_is_an_unknown_outcome(classify: Any, body: Any) -> None:
    # Given a provider that said 200 with a body nobody can read
    verdict = verdict_of(classify, answer(200, body))

    # Then money may have moved: unknown outcome, never a blind retry
    assert isinstance(verdict, UnknownOutcome)
    assert verdict.code == "unreadable_answer"


def test_stripe_classify_returns_the_object_of_a_2xx() -> None:
    assert stripe.classify(answer(200, {"id": "pi_1", "object": "payment_intent"})) == {
        "id": "pi_1",
        "object": "payment_intent",
    }


@pytest.mark.parametrize(
    ("status", "body", "transient", "expected", "code"),
    [
        (422, adyen_error(422, "704"), True, TransientError, "idempotency_key_in_use"),
        (409, adyen_error(409, "704"), True, TransientError, "idempotency_key_in_use"),
        (422, adyen_error(422, "704"), None, PermanentError, "idempotency_key_reused"),
        (422, adyen_error(422, "704"), False, PermanentError, "idempotency_key_reused"),
        (422, adyen_error(422, "703"), None, TransientError, "idempotency_key_in_use"),
        (422, adyen_error(422, "137"), None, PermanentError, "137"),
        (401, adyen_error(401, "000", "security"), None, PermanentError, "000"),
        (429, adyen_error(429, "00_429", "internal"), None, RateLimited, "00_429"),
        (500, adyen_error(500, "00_500", "internal"), None, TransientError, "00_500"),
        (503, adyen_error(503, "00_503", "internal"), False, PermanentError, "00_503"),
        (500, None, None, TransientError, "adyen_error"),
    ],
)
def test_adyen_classify(
    status: int, body: Any, transient: bool | None, expected: type[Any], code: str
) -> None:
    verdict = verdict_of(adyen.classify, answer(status, body, transient))

    assert type(verdict) is expected
    assert verdict.code == code
    assert verdict.http_status == status
    if body is not None:
        assert "adyen says" in verdict.message


@pytest.mark.parametrize(
    ("headers", "hint"),
    [({"transient-error": "true"}, True), ({"transient-error": "false"}, False), ({}, None)],
)
def test_adyen_transient_hint(headers: dict[str, str], hint: bool | None) -> None:
    assert adyen.transient_hint(headers) is hint


def test_stripe_form_encoding_flattens_metadata_and_lists() -> None:
    encoded = stripe.form_encode(
        {
            "amount": 1250,
            "confirm": True,
            "metadata": {"conveyor_key": "k1"},
            "expand": ["payment_intent"],
            "description": None,
        }
    )

    assert encoded == {
        "amount": "1250",
        "confirm": "true",
        "metadata[conveyor_key]": "k1",
        "expand[]": ["payment_intent"],
    }


def test_adyen_keys_over_64_characters_become_a_stable_digest() -> None:
    short, long = "k" * 64, "k" * 65

    assert adyen.adyen_key(short) == short
    assert len(adyen.adyen_key(long)) == 64
    assert adyen.adyen_key(long) == adyen.adyen_key("k" * 65) != adyen.adyen_key("k" * 66)
