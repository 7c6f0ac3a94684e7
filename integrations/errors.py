"""The error taxonomy every provider call is mapped into.

IntegrationError
├── TransientError          nothing took effect, or retrying is harmless: retry later
│   ├── RateLimited         the provider asked us to slow down (carries retry_after)
│   ├── NotSent             the request never left (connect, DNS, proxy, TLS handshake failed)
│   └── DeadlinePassed      our own attempt deadline ran out before sending: not the provider's
│                           fault (provider_fault = False), so no breaker counts it
├── UnknownOutcome          the request may have taken effect: retry only with an idempotency key
└── PermanentError          the request is wrong and will stay wrong: fail, never retry
    └── Misconfigured       our own stored config cannot make a request (a header that cannot
                            be sent): not the provider's fault (provider_fault = False)

Which transport exception becomes which of these (sent or not) is one table:
`integrations.transport_errors.TRANSPORT_RULES`.

Deferred                    not attempted at all (breaker open, over a rate limit): come back later
Cancelled                   not a provider error: the job was cancelled at a checkpoint
"""

from __future__ import annotations


class IntegrationError(Exception):
    """A provider call did not produce a usable answer."""

    error_class = "integration_error"
    # Whether the failure says something about the provider's health (breakers count it).
    provider_fault = True

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


class NotSent(TransientError):
    """The request never left this host; retrying cannot cause a second effect."""


class DeadlinePassed(TransientError):
    """The attempt's own deadline ran out before the request was sent; the provider saw nothing.

    Not a provider failure (for instance a slow database ate the time): `provider_fault` is
    False, so circuit breakers and retry budgets must not count it.
    """

    provider_fault = False


class UnknownOutcome(IntegrationError):
    """The request was sent but no answer came back; it may have taken effect."""

    error_class = "unknown_outcome"


class PermanentError(IntegrationError):
    """The provider rejected the request for good; retrying cannot help."""

    error_class = "permanent"


class Misconfigured(PermanentError):
    """The job's own configuration cannot make a request; nothing was sent.

    Our fault, not the provider's: `provider_fault` is False, so no breaker counts it and one
    tenant's bad config cannot open a breaker every tenant shares.
    """

    provider_fault = False


class Cancelled(Exception):
    """The job was cancelled; raised at a checkpoint between a handler's steps."""

    def __init__(self, step: str) -> None:
        super().__init__(f"cancelled before {step}")
        self.step = step


class Deferred(Exception):
    """The call was not made (breaker open, rate limit reached); try again after `wait_s`.

    `cause` is a short stable name for metrics: `breaker_open`, `rate_limit`,
    `tenant_rate_limit`, `guard_unavailable`, `sync_continues` (a data sync out of attempt
    time goes on from its cursor), or `other`.
    """

    def __init__(self, reason: str, wait_s: float, cause: str = "other") -> None:
        super().__init__(f"deferred: {reason}; retry in {wait_s:.2f}s")
        self.reason = reason
        self.wait_s = wait_s
        self.cause = cause
