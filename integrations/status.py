"""HTTP status and headers → error class: the shared default under each provider's `classify`
(docs/design.md §4)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from integrations.errors import (
    IntegrationError,
    PermanentError,
    RateLimited,
    TransientError,
)

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_CAP_S = 3600.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header, in delta-seconds or HTTP-date form."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


RetryHint = Callable[[Mapping[str, str]], bool | None]


def stripe_should_retry(headers: Mapping[str, str]) -> bool | None:
    """Stripe's `Stripe-Should-Retry` header, which overrides the status rule when present."""
    value = headers.get("Stripe-Should-Retry")
    if value is None:
        return None
    return value.strip().lower() == "true"


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    message: str,
    code: str | None = None,
    should_retry: bool | None = None,
) -> IntegrationError | None:
    """The error a response with this status stands for, or None when it is a success.

    `should_retry` is the provider's own verdict (a hint header); when given it wins.
    """
    if status < 400:
        return None
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if should_retry is False:
        return PermanentError(message, http_status=status, code=code)
    if should_retry is True and status != 429:
        return TransientError(message, http_status=status, code=code, retry_after=retry_after)
    if status == 429:
        return RateLimited(message, http_status=status, code=code, retry_after=retry_after)
    if status in TRANSIENT_STATUSES:
        return TransientError(message, http_status=status, code=code, retry_after=retry_after)
    return PermanentError(message, http_status=status, code=code)
