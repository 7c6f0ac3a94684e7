"""One delivery attempt: check the address again, sign, POST pinned, classify the answer.

Status rules (Standard Webhooks' guidance, as Svix and Stripe apply them): 2xx is delivered;
408, 429 and 5xx, timeouts and connection failures are transient (retried with backoff, a
`Retry-After` honoured as a floor); `410 Gone` is permanent and disables the endpoint; any
other status, a redirect included (never followed), is permanent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from config.settings import Settings
from integrations.errors import RateLimited, TransientError
from integrations.outbound import (
    OutboundRefused,
    OutboundTimeout,
    Resolver,
    check_url,
    pinned_request,
)
from integrations.outcome import Failed, FailureKind, Outcome, Succeeded
from integrations.redact import redact_text
from integrations.status import parse_retry_after
from integrations.webhooks.signing import signed_headers

EXCERPT_CHARS = 500
TRANSIENT_STATUSES = frozenset({408, 429})
GONE = 410


@dataclass(frozen=True)
class Message:
    """What one delivery sends: the event id (the `webhook-id`), the JSON body, the secrets."""

    msg_id: str
    body: str
    secrets: Sequence[str]


@dataclass(frozen=True)
class Sent:
    """One attempt: a final `outcome`, or a `retry` error; and what its attempt row keeps."""

    outcome: Outcome | None
    retry: TransientError | None
    http_status: int | None
    latency_ms: int
    response_excerpt: str | None
    disable_endpoint: bool = False


def excerpt_of(body: bytes) -> str:
    """A short, redacted text form of a receiver's answer body."""
    return redact_text(body[: EXCERPT_CHARS * 2].decode("utf-8", "replace"))[:EXCERPT_CHARS]


def send(
    url: str,
    message: Message,
    settings: Settings,
    *,
    resolver: Resolver | None = None,
    now_s: float | None = None,
) -> Sent:
    """Deliver `message` to `url` once; never raises for the endpoint's failures.

    The address is checked again here (a DNS answer may have changed since registration) and
    the connection pinned to what was checked. A refused address is a permanent failure.
    """
    started = time.monotonic()
    try:
        checked = check_url(url, allow_private=settings.outbound_allow_loopback, resolver=resolver)
    except OutboundRefused as exc:
        failed = Failed(f"refused_{exc.reason}", exc.message, kind=FailureKind.PERMANENT)
        return Sent(failed, None, None, 0, None)
    timestamp = int(now_s if now_s is not None else time.time())
    headers = signed_headers(message.msg_id, timestamp, message.body, message.secrets)
    try:
        answer = pinned_request(
            checked,
            "POST",
            headers=headers,
            body=message.body.encode(),
            connect_timeout_s=settings.webhook_connect_timeout_s,
            total_timeout_s=settings.webhook_timeout_s,
            body_cap_bytes=settings.webhook_response_cap_bytes,
        )
    except OutboundTimeout as exc:
        error = TransientError(str(exc), code="timeout")
        return Sent(None, error, None, _since(started), None)
    except (requests.RequestException, OSError) as exc:
        error = TransientError(f"connection failed: {type(exc).__name__}", code="connect")
        return Sent(None, error, None, _since(started), None)
    status = answer.status
    text = excerpt_of(answer.body)
    if 200 <= status < 300:
        succeeded = Succeeded({"http_status": status}, http_status=status)
        return Sent(succeeded, None, status, answer.latency_ms, text)
    if status in TRANSIENT_STATUSES or status >= 500:
        error_type = RateLimited if status == 429 else TransientError
        error = error_type(
            f"the endpoint answered {status}",
            http_status=status,
            code=f"http_{status}",
            retry_after=parse_retry_after(answer.headers.get("Retry-After")),
        )
        return Sent(None, error, status, answer.latency_ms, text)
    gone = status == GONE
    failed = Failed(
        "endpoint_gone" if gone else f"http_{status}",
        f"the endpoint answered {status}" + (": endpoint disabled" if gone else ""),
        http_status=status,
        kind=FailureKind.PERMANENT,
    )
    return Sent(failed, None, status, answer.latency_ms, text, disable_endpoint=gone)


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
