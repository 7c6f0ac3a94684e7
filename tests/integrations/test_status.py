"""Status and headers → error class: every row of docs/design.md §4's table, both Retry-After
forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.status import (
    RETRY_AFTER_CAP_S,
    error_for_status,
    parse_retry_after,
    stripe_should_retry,
)


@pytest.mark.parametrize("status", [408, 409, 425, 500, 502, 503, 504])
def test_transient_statuses_map_to_transient_errors(status: int) -> None:
    # Given a transient status, When it is classified, Then it is retryable
    error = error_for_status(status, {}, "x")
    assert type(error) is TransientError


def test_429_maps_to_rate_limited_carrying_retry_after() -> None:
    # Given a 429 with Retry-After: 7, When classified, Then the wait travels with the error
    error = error_for_status(429, {"Retry-After": "7"}, "slow down")
    assert isinstance(error, RateLimited) and error.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_client_errors_map_to_permanent_errors(status: int) -> None:
    # Given a client error, When classified, Then it is never retried
    assert type(error_for_status(status, {}, "no")) is PermanentError


@pytest.mark.parametrize("status", [200, 201, 204, 302])
def test_success_and_redirect_statuses_are_not_errors(status: int) -> None:
    assert error_for_status(status, {}, "") is None


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    # Given both forms of the header
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    # When parsed, Then each gives the seconds to wait
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after(date, now) == pytest.approx(30.0)


def test_retry_after_in_the_past_is_zero_and_absurd_values_are_capped() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after("999999", now) == RETRY_AFTER_CAP_S
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_transient_statuses_carry_retry_after_too() -> None:
    # Given a 503 with Retry-After, When classified, Then the wait is kept
    error = error_for_status(503, {"Retry-After": "5"}, "down")
    assert isinstance(error, TransientError) and error.retry_after == 5.0


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (503, "false", PermanentError),  # the provider says: do not retry this 5xx
        (400, "true", TransientError),  # the provider says: this 4xx is worth retrying
        (409, "true", TransientError),
        (500, "true", TransientError),
    ],
)
def test_stripe_should_retry_overrides_the_status_rule(
    status: int, header: str, expected: type
) -> None:
    # Given a provider hint header
    headers = {"Stripe-Should-Retry": header}
    # When classified with the provider's hint, Then the hint wins
    error = error_for_status(status, headers, "x", should_retry=stripe_should_retry(headers))
    assert type(error) is expected


def test_no_hint_header_means_no_override() -> None:
    assert stripe_should_retry({}) is None
