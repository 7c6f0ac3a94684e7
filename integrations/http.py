"""The one HTTP client every provider uses: timeouts, a deadline, error mapping, fork safety."""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from config.settings import Settings
from integrations.errors import IntegrationError, TransientError, UnknownOutcome
from integrations.exchanges import Exchange, record
from integrations.redact import excerpt, redact_text
from integrations.status import RetryHint, error_for_status

log = structlog.get_logger(__name__)

# Sub-second blips are retried inside the call; anything longer goes back to the job scheduler.
CONNECT_TRIES = 3
CONNECT_RETRY_WAIT_S = (0.05, 0.25)


@dataclass(frozen=True)
class HttpResponse:
    """A provider's answer, already known to be a success."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str
    latency_ms: int


def path_segment(value: str) -> str:
    """`value` escaped as one URL path segment."""
    return urllib.parse.quote(value, safe="")


class _NotSent(TransientError):
    """The connection failed before the request left; always safe to retry."""


def _was_sent(exc: requests.ConnectionError) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(reason, Urllib3ProxyError):  # no connection to the proxy: nothing went out
        reason = reason.original_error
    return not isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _error_message(body: Any, fallback: str) -> tuple[str, str | None]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # Stripe's shape
        err = body["error"]
        return str(err.get("message") or fallback), err.get("code") or err.get("type")
    if isinstance(body, dict) and "errorCode" in body:  # Adyen's shape
        return str(body.get("message") or fallback), str(body["errorCode"])
    return fallback, None


def _transport_error(exc: Exception) -> IntegrationError:
    if isinstance(exc, _NotSent):
        return TransientError(exc.message, code="connect_error")
    if isinstance(exc, requests.ReadTimeout):
        return UnknownOutcome("read timeout after the request was sent", code="timeout")
    if isinstance(exc, requests.ConnectionError):
        return UnknownOutcome("connection lost after the request was sent", code="reset")
    return TransientError(f"request failed: {type(exc).__name__}", code="request_error")


CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _read_environment_once(session: requests.Session) -> None:
    """Take what requests would read from the environment on every call, once, when it can.

    With `trust_env`, requests scans the environment for proxies (and ~/.netrc for
    credentials) on every request: about a twentieth of an I/O job's worker CPU. Without proxy
    variables there is nothing per-URL to decide, so the session stops looking (and no longer
    reads ~/.netrc: provider credentials come from settings) and keeps the one thing left to
    honour, a CA bundle variable. With proxies set, requests keeps deciding per URL (NO_PROXY).
    """
    if urllib.request.getproxies():
        return
    session.trust_env = False
    for name in CA_BUNDLE_VARIABLES:
        bundle = os.environ.get(name)
        if bundle:
            session.verify = bundle
            return


class HttpClient:
    """A requests.Session with (connect, read) timeouts on every call and our error taxonomy."""

    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int = 32) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        _read_environment_once(self.session)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        retry_hint: RetryHint | None = None,
    ) -> HttpResponse:
        """Send one request; return the success or raise an IntegrationError subclass."""
        started = time.monotonic()
        sent = f"{method} {redact_text(url)}"
        if params:
            sent += f" {excerpt(dict(params), 500)}"
        if json is not None or data is not None:
            sent += "\n" + excerpt(json if json is not None else dict(data or {}))
        try:
            response = self._send(method, url, headers, params, json, data, deadline)
        except (requests.RequestException, _NotSent) as exc:
            failure = _transport_error(exc)
            record(Exchange(request=sent, response=f"(no response: {failure.code})", status=None))
            raise failure from exc
        latency_ms = int((time.monotonic() - started) * 1000)
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = response.text
        record(Exchange(sent, f"{response.status_code}\n{excerpt(body)}", response.status_code))
        hint = retry_hint(response.headers) if retry_hint is not None else None
        message, code = _error_message(body, response.reason)
        error: IntegrationError | None = error_for_status(
            response.status_code, response.headers, message, code, should_retry=hint
        )
        if error is not None:
            error.body = body  # type: ignore[attr-defined]
            error.headers = dict(response.headers)  # type: ignore[attr-defined]
            error.latency_ms = latency_ms  # type: ignore[attr-defined]
            raise error
        return HttpResponse(response.status_code, response.headers, body, response.text, latency_ms)

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> HttpResponse:
        """TEMPORARY stand-in: any status comes back; only transport errors raise."""
        started = time.monotonic()
        sent = f"{method} {redact_text(url)}"
        hdrs = dict(headers or {})
        data = None
        if form is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode(form, doseq=True)
            sent += "\n" + excerpt(dict(form))
        elif json is not None:
            sent += "\n" + excerpt(json)
        try:
            response = self._send(method, url, hdrs, params, json, data, deadline)
        except (requests.RequestException, _NotSent) as exc:
            failure = _transport_error(exc)
            record(Exchange(request=sent, response=f"(no response: {failure.code})", status=None))
            raise failure from exc
        latency_ms = int((time.monotonic() - started) * 1000)
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = None
        record(
            Exchange(
                sent,
                f"{response.status_code}\n{excerpt(body or response.text)}",
                response.status_code,
            )
        )
        return HttpResponse(response.status_code, response.headers, body, response.text, latency_ms)

    @retry(
        retry=retry_if_exception(lambda e: isinstance(e, _NotSent)),
        stop=stop_after_attempt(CONNECT_TRIES),
        wait=wait_random(*CONNECT_RETRY_WAIT_S),
        reraise=True,
    )
    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        deadline: float | None,
    ) -> requests.Response:
        read_timeout = self.read_timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientError("attempt deadline passed before sending", code="deadline")
            read_timeout = min(read_timeout, remaining)
        try:
            return self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                json=json,
                data=data,
                timeout=(self.connect_timeout, read_timeout),
            )
        except requests.ConnectionError as exc:
            if not _was_sent(exc):
                log.info("http.connect_failed", url=url, error=type(exc).__name__)
                raise _NotSent(f"could not connect to {url}") from exc
            raise

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()


_lock = threading.Lock()
_clients: dict[tuple[int, float, float], HttpClient] = {}


def get_http_client(settings: Settings) -> HttpClient:
    """This process's client; a forked child builds its own session, never sharing sockets."""
    key = (os.getpid(), settings.http_connect_timeout_s, settings.http_read_timeout_s)
    with _lock:
        client = _clients.get(key)
        if client is None:
            if any(k[0] != key[0] for k in _clients):
                _clients.clear()  # a forked child drops its parent's sessions
            client = _clients[key] = HttpClient(
                settings.http_connect_timeout_s,
                settings.http_read_timeout_s,
                pool_size=max(32, settings.worker_concurrency * 2),
            )
        return client


def reset_http_client() -> None:
    """Forget the client (after fork, or between tests)."""
    with _lock:
        _clients.clear()
