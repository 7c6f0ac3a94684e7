"""Pieces the payment adapters share when they map a provider's failure to our taxonomy.

Each adapter keeps its own mapping in one `classify` function; these are its tools: a retry
hint that remembers the headers it was shown (our errors carry the body, not the headers), and
a way to restate an error as another class while keeping its status, body and Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from integrations.errors import IntegrationError
from integrations.status import RetryHint

E = TypeVar("E", bound=IntegrationError)


class HeaderProbe:
    """A `retry_hint` that passes the headers to `hint` and keeps them for the classifier."""

    def __init__(self, hint: RetryHint) -> None:
        self.hint = hint
        self.headers: Mapping[str, str] = {}

    def __call__(self, headers: Mapping[str, str]) -> bool | None:
        self.headers = headers
        return self.hint(headers)

    def header(self, name: str) -> str | None:
        """A header of the last response (requests' headers are case-insensitive)."""
        return self.headers.get(name)


def restated(
    error: IntegrationError, kind: type[E], *, code: str | None, message: str | None = None
) -> E:
    """`error` as a `kind`, keeping its HTTP status, Retry-After and parsed body."""
    new = kind(
        message or error.message,
        http_status=error.http_status,
        code=code,
        retry_after=error.retry_after,
    )
    new.body = body_of(error)  # type: ignore[attr-defined]
    return new


def body_of(error: IntegrationError) -> Any:
    """The parsed response body our HTTP client attached to the error, if any."""
    return getattr(error, "body", None)
