"""The one HTTP client every provider uses: timeouts, a total deadline, the exchange record.

`HttpClient.send` returns the provider's answer whatever its status and raises only transport
errors, each from the one table in `integrations.transport_errors`; classifying a status is the
provider's business (its `classify`). `request` is the older status-mapping wrapper.
"""

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
from tenacity import RetryCallState, retry, retry_if_exception_type, wait_random
from urllib3 import PoolManager

from config.settings import Settings
from integrations.errors import DeadlinePassed, IntegrationError, NotSent
from integrations.exchanges import Exchange, record
from integrations.redact import excerpt, redact_text
from integrations.transport_errors import error_for_transport, error_while_reading
from integrations.watchdog import WATCHED_POOLS, Watch, Watchdog, current_watch

log = structlog.get_logger(__name__)

# Sub-second blips are retried inside the call; anything longer goes back to the job scheduler.
CONNECT_TRIES = 3
CONNECT_RETRY_WAIT_S = (0.05, 0.25)
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class HttpResponse:
    """A provider's answer, any status: `body` is the parsed JSON (None when not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str
    latency_ms: int


def path_segment(value: str) -> str:
    """`value` escaped as one URL path segment: `/`, `?`, `#`, `..` cannot reach the URL's shape.

    RFC 3986 §3.3: a segment may not hold "/" or "?"; everything outside the unreserved set
    is percent-encoded, so `x/../../refunds?a=1` stays one segment naming nothing.
    """
    return urllib.parse.quote(value, safe="")


def _stop_connect_retries(state: RetryCallState) -> bool:
    """Stop after CONNECT_TRIES, or when another wait would run into the call's deadline."""
    if state.attempt_number >= CONNECT_TRIES:
        return True
    deadline = state.kwargs.get("deadline")
    return deadline is not None and time.monotonic() + CONNECT_RETRY_WAIT_S[1] >= deadline


def _parse_body(response: requests.Response) -> tuple[Any, str]:
    text = response.text if response.content else ""
    if not text:
        return None, text
    try:
        return response.json(), text
    except ValueError:
        return None, text


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools (direct and through proxies) use watched connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager


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
    """A requests.Session: (connect, read) timeouts, a total deadline, the exchange record."""

    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int = 32) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = requests.Session()
        adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._watchdog = Watchdog()
        _read_environment_once(self.session)

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
        """Send one request and return the provider's answer, whatever its status.

        `form` (even `{}`) is sent urlencoded (doseq) with `Content-Type:
        application/x-www-form-urlencoded`; `json` as JSON. `deadline` is a `time.monotonic()`
        instant the whole call (connect, send, wait, read the body) ends by, give or take the
        watchdog's wake-up. Raises only transport errors, per `TRANSPORT_RULES`: `NotSent` (safe
        to retry; retried here a few times while the deadline allows), `DeadlinePassed`
        (nothing sent: our deadline ran out first), `UnknownOutcome` (sent, answer lost or cut),
        `PermanentError` (`invalid_url`). Every call is recorded, redacted, as an `Exchange`.
        """
        started = time.monotonic()
        sent = f"{method} {redact_text(url)}"
        if params:
            sent += f" {excerpt(dict(params), 500)}"
        if json is not None or form is not None:
            sent += "\n" + excerpt(json if json is not None else dict(form or {}))
        all_headers = dict(headers or {})
        data: str | None = None
        if form is not None:
            all_headers["Content-Type"] = FORM_CONTENT_TYPE
            data = urllib.parse.urlencode(form, doseq=True)
        try:
            response, body, text = self._send(
                method, url, all_headers, params, json, data, deadline=deadline
            )
        except IntegrationError as failure:
            record(Exchange(request=sent, response=f"(no response: {failure.code})", status=None))
            raise
        latency_ms = int((time.monotonic() - started) * 1000)
        shown = body if body is not None else text
        record(Exchange(sent, f"{response.status_code}\n{excerpt(shown)}", response.status_code))
        return HttpResponse(response.status_code, response.headers, body, text, latency_ms)

    @retry(
        retry=retry_if_exception_type(NotSent),
        stop=_stop_connect_retries,
        wait=wait_random(*CONNECT_RETRY_WAIT_S),
        reraise=True,
    )
    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, Any] | None,
        json: Any,
        data: str | None,
        *,
        deadline: float | None,
    ) -> tuple[requests.Response, Any, str]:
        connect_timeout, read_timeout = self.connect_timeout, self.read_timeout
        watch: Watch | None = None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlinePassed("attempt deadline passed before sending", code="deadline")
            connect_timeout, read_timeout = (
                min(connect_timeout, remaining),
                min(read_timeout, remaining),
            )
            watch = self._watchdog.watch(deadline)
        token = current_watch.set(watch)
        try:
            return self._exchange(
                method, url, headers, params, json, data, (connect_timeout, read_timeout), watch
            )
        finally:
            current_watch.reset(token)
            if watch is not None:
                watch.finish()

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, Any] | None,
        json: Any,
        data: str | None,
        timeout: tuple[float, float],
        watch: Watch | None,
    ) -> tuple[requests.Response, Any, str]:
        # stream=True: the body is read below, under the same watch, so a drip cannot outlive
        # the deadline (a read timeout alone bounds each read, not their sum).
        try:
            response = self.session.request(
                method,
                url,
                headers=headers,
                params=params,
                json=json,
                data=data,
                timeout=timeout,
                stream=True,
            )
        except requests.RequestException as exc:
            if watch is not None and watch.cut:
                raise error_while_reading(exc, deadline_cut=True) from exc
            failure = error_for_transport(exc, redact_text(url))
            if isinstance(failure, NotSent):
                log.info("http.not_sent", url=url, error=type(exc).__name__, code=failure.code)
            raise failure from exc
        try:
            body, text = _parse_body(response)
        except (requests.RequestException, OSError) as exc:
            response.close()
            raise error_while_reading(exc, deadline_cut=watch is not None and watch.cut) from exc
        return response, body, text

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
