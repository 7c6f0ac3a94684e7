"""The error taxonomy every provider call is mapped into.

IntegrationError
├── TransientError          nothing took effect, or retrying is harmless: retry later
│   └── RateLimited         the provider asked us to slow down (carries retry_after)
├── UnknownOutcome          the request may have taken effect: retry only with an idempotency key
└── PermanentError          the request is wrong and will stay wrong: fail, never retry

Deferred                    not attempted at all (breaker open, over a rate limit): come back later
Cancelled                   not a provider error: the job was cancelled at a checkpoint
"""

from __future__ import annotations


class IntegrationError(Exception):
    """A provider call did not produce a usable answer."""

    error_class = "integration_error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after


class TransientError(IntegrationError):
    """The call failed in a way that a later retry may fix."""

    error_class = "transient"


class RateLimited(TransientError):
    """The provider throttled us; wait at least `retry_after` seconds."""

    error_class = "rate_limited"


class UnknownOutcome(IntegrationError):
    """The request was sent but no answer came back; it may have taken effect."""

    error_class = "unknown_outcome"


class PermanentError(IntegrationError):
    """The provider rejected the request for good; retrying cannot help."""

    error_class = "permanent"


class Cancelled(Exception):
    """The job was cancelled; raised at a checkpoint between a handler's steps."""

    def __init__(self, step: str) -> None:
        super().__init__(f"cancelled before {step}")
        self.step = step


class Deferred(Exception):
    """The call was not made (breaker open, rate limit reached); try again after `wait_s`."""

    def __init__(self, reason: str, wait_s: float) -> None:
        super().__init__(f"deferred: {reason}; retry in {wait_s:.2f}s")
        self.reason = reason
        self.wait_s = wait_s
