"""Transport exceptions → (sent?, error class, code): the one table, read top to bottom.

An exception raised before the answer's body was being read is matched against
`TRANSPORT_RULES`, on the exception itself or on the reason requests wrapped in it (urllib3's
`NewConnectionError` inside a `MaxRetryError` inside a `ConnectionError`). Once the status line
and headers arrived the request was certainly sent, so anything that goes wrong while reading the
body is an `UnknownOutcome` (`timeout`, `decode_error` or `body_cut`), whatever its type.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import requests
from requests import exceptions as rex
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from integrations.errors import IntegrationError, NotSent, PermanentError, UnknownOutcome


@dataclass(frozen=True)
class TransportRule:
    """One row: an exception type, whether the request had left, and what it becomes."""

    exception: type[BaseException] | tuple[type[BaseException], ...]
    sent: bool
    error: type[IntegrationError]
    code: str
    meaning: str


TRANSPORT_RULES: tuple[TransportRule, ...] = (
    TransportRule(
        (rex.InvalidURL, rex.MissingSchema, rex.InvalidSchema, rex.URLRequired),
        False, PermanentError, "invalid_url", "the URL cannot be requested at all",
    ),
    TransportRule(
        rex.ConnectTimeout, False, NotSent, "connect_timeout", "no TCP connection in time"
    ),
    TransportRule(rex.ProxyError, False, NotSent, "proxy_error", "the proxy is unreachable"),
    TransportRule(rex.SSLError, False, NotSent, "ssl_error", "the TLS handshake failed"),
    TransportRule(NameResolutionError, False, NotSent, "dns_error", "the name did not resolve"),
    TransportRule(
        (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError),
        False, NotSent, "connect_error", "the connection was refused or could not be made",
    ),
    TransportRule(
        rex.ReadTimeout, True, UnknownOutcome, "timeout", "sent; no answer within the read timeout"
    ),
    TransportRule(
        rex.ChunkedEncodingError, True, UnknownOutcome, "body_cut", "sent; the answer was cut"
    ),
    TransportRule(
        rex.ContentDecodingError, True, UnknownOutcome, "decode_error",
        "sent; the answer's encoding was broken",
    ),
    TransportRule(
        requests.ConnectionError, True, UnknownOutcome, "reset",
        "sent; the connection was reset or closed before the answer",
    ),
    TransportRule(
        rex.RequestException, True, UnknownOutcome, "request_error",
        "anything else requests raises: assumed sent",
    ),
)  # fmt: skip


def _reason(exc: BaseException) -> BaseException | None:
    """The urllib3 cause requests wrapped, unwrapping MaxRetryError and a proxy's own error."""
    reason = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, Urllib3ProxyError):  # no connection to the proxy: nothing went out
        reason = reason.original_error
    return reason


def rule_for(exc: BaseException) -> TransportRule:
    """The first row matching the exception or the reason inside it."""
    reason = _reason(exc)
    for rule in TRANSPORT_RULES:
        if isinstance(exc, rule.exception) or isinstance(reason, rule.exception):
            # A requests subclass row (ReadTimeout, SSLError…) outranks the reason inside it.
            return rule
    return TRANSPORT_RULES[-1]


def error_for_transport(exc: BaseException, url: str) -> IntegrationError:
    """The error a transport exception raised while sending stands for."""
    rule = rule_for(exc)
    return rule.error(f"{rule.meaning} ({type(exc).__name__}) for {url}", code=rule.code)


def error_while_reading(exc: BaseException, deadline_cut: bool) -> UnknownOutcome:
    """The error for a failure after the headers arrived: the request went out."""
    if deadline_cut:
        return UnknownOutcome(
            "the attempt deadline passed while reading the answer", code="timeout"
        )
    if isinstance(exc, rex.ContentDecodingError):
        return UnknownOutcome("the answer's content encoding was broken", code="decode_error")
    reason = _reason(exc)
    if isinstance(exc, rex.ReadTimeout | socket.timeout) or isinstance(reason, ReadTimeoutError):
        return UnknownOutcome("the answer stalled past the read timeout", code="timeout")
    return UnknownOutcome(f"the answer was cut ({type(exc).__name__})", code="body_cut")
