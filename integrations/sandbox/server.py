"""The sandbox HTTP server: routing, auth, fault injection and the JSON wire format."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from integrations.sandbox import admin, adyen_api, charges, data_feed, ecb_feed, stripe_api
from integrations.sandbox.errors import ApiError, Dialect, error_body, fault_error, invalid_request
from integrations.sandbox.faults import (
    MAX_DELAY_MS,
    ODD_BODY,
    Fault,
    fault_from_header,
    is_delay,
)
from integrations.sandbox.feed_state import RawReply
from integrations.sandbox.rates import UnknownCurrencyError, rates_for
from integrations.sandbox.routing import Route, match
from integrations.sandbox.state import Claim, SandboxState, SavedResponse
from integrations.sandbox.wire import DROP, Backend, ProviderKeys, Reply, Request

DEFAULT_API_KEY = "sk_sandbox_local"
DEFAULT_STRIPE_API_KEY = "sk_test_sandbox"
DEFAULT_ADYEN_API_KEY = "adyen_sandbox_key"
MAX_BODY_BYTES = 1024 * 1024
IDLE_TIMEOUT_S = 75.0
# Requests under these prefixes are the providers' own: counted, and subject to faults and outages.
PROVIDER_PREFIXES: tuple[tuple[str, Dialect], ...] = (
    ("/v1/rates", "stripe"),
    ("/v1/charges", "stripe"),
    ("/v1/payment_intents", "stripe"),
    ("/v1/refunds", "stripe"),
    ("/adyen/", "adyen"),
)

log = logging.getLogger(__name__)


def provider_dialect(path: str) -> Dialect | None:
    """Which provider a path belongs to, or None for the sandbox's own endpoints."""
    for prefix, dialect in PROVIDER_PREFIXES:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return dialect
    return None


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers the requests of one keep-alive connection, JSON in and out."""

    protocol_version = "HTTP/1.1"
    server_version = "ConveyorSandbox/1.0"
    # Headers and body leave in two writes; with Nagle on, delayed ACKs stall each reply ~40 ms.
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S
    server: SandboxServer

    def do_GET(self) -> None:
        """Serve a GET."""
        self._handle()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._handle()

    # Other methods reach the router too, so a known path answers 405 in JSON rather than 501.
    do_PUT = do_PATCH = do_DELETE = do_POST

    def _handle(self) -> None:
        arrived_at = time.monotonic()
        try:
            reply = self._dispatch(arrived_at)
        except Exception as exc:
            reply = _error_reply(exc, f"{self.command} {self.path}")
        if reply.drop:
            self._drop()
        else:
            self._send(reply)

    def _dispatch(self, arrived_at: float) -> Reply:
        url = urlsplit(self.path)
        raw = self._read_body()
        found = match(ROUTES, self.command, url.path)
        if url.path.startswith("/_sandbox/"):
            self._require_loopback()
        request = Request(
            parse_qs(url.query),
            raw,
            arrived_at=arrived_at,
            headers={name.lower(): value for name, value in self.headers.items()},
            params=found.params,
            method=self.command,
            path=url.path,
        )
        dialect = provider_dialect(url.path)
        if dialect is not None:
            return self._as_provider(found.route, dialect, request)
        return found.route.endpoint(self, request)

    def _as_provider(self, route: Route[Endpoint], dialect: Dialect, request: Request) -> Reply:
        """Count the request; an outage answers it, else its fault (header, script) shapes it."""
        state = self.server.state
        # Counted by pattern, so `/v1/payment_intents/{id}/capture` is one path in the stats.
        state.count(route.pattern, request.header("Idempotency-Key"), request.arrived_at)
        outage = state.outage_at(request.arrived_at)
        if outage is not None:
            # Answered at once and before any fault is read, so none is used up by the outage.
            message = f"Sandbox outage: HTTP {outage.status}."
            return _fault_reply(dialect, outage.status, message, outage.retry_after)
        request = replace(request, latency_s=self._latency_s())
        fault = self._fault()
        time.sleep(fault.delay_ms / 1000)
        if fault.reset == "before":
            return DROP
        if fault.status is not None and not (route.saves_failures and fault.status == 500):
            # Rate limiters and gateways answer before the API's idempotency layer: nothing saved.
            time.sleep(request.latency_s)
            message = f"Injected sandbox fault: HTTP {fault.status}."
            return _fault_reply(
                dialect, fault.status, message, fault.retry_after, fault.should_retry
            )
        if fault.status is not None:
            # A 500 is the API failing after execution began: the endpoint saves it under the key.
            request = replace(request, fault=fault)
        try:
            reply = route.endpoint(self, request)
        except Exception as exc:
            reply = _error_reply(exc, f"{self.command} {self.path}")
        # "after": the effect is done and recorded, but its answer is lost on the way back.
        if fault.reset == "after":
            return DROP
        if fault.odd_body and 200 <= reply.status < 300:
            reply = replace(reply, body=dict(ODD_BODY))
        return replace(reply, drip_ms=fault.drip_ms) if fault.drip_ms else reply

    def get_healthz(self, request: Request) -> Reply:
        """Liveness; never counted, never faulted."""
        return Reply(200, {"status": "ok"})

    def get_rates(self, request: Request) -> Reply:
        """The data API: exchange rates for `base`, limited to `symbols` if given."""
        self._authenticate()
        base = request.query.get("base", ["EUR"])[-1]
        listed = ",".join(request.query.get("symbols", [])).split(",")
        symbols = [symbol for symbol in listed if symbol.strip()] or None
        try:
            body = rates_for(base, symbols)
        except UnknownCurrencyError as exc:
            raise invalid_request("unknown_currency", str(exc), exc.param) from exc
        time.sleep(request.latency_s)
        return Reply(200, body)

    def post_charges(self, request: Request) -> Reply:
        """The payment API: one charge per idempotency key, replayed on retries."""
        self._authenticate()
        key = charges.check_key(self.headers.get("Idempotency-Key"))
        body = _parse_json(request.raw)
        charge = charges.parse_charge(body)
        digest = charges.fingerprint(body)
        state = self.server.state
        claim, saved = state.claim(key, digest)
        if claim is Claim.REPLAY and saved is not None:
            return Reply(saved.status, saved.body, {"Idempotent-Replayed": "true"})
        if claim is Claim.REUSED:
            raise ApiError(
                400,
                "idempotency_error",
                "idempotency_key_reused",
                "This Idempotency-Key was already used with different parameters.",
            )
        if claim is Claim.IN_USE:
            raise ApiError(
                409,
                "idempotency_error",
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still in progress; retry later.",
            )
        try:
            # The provider "thinks" while the key is in flight, so a concurrent retry sees 409.
            time.sleep(request.latency_s)
            result = charges.decide(key, charge)
            state.save(key, SavedResponse(result.status, result.body, digest), effect=result.effect)
        finally:
            state.release(key)
        return Reply(result.status, result.body)

    def _fault(self) -> Fault:
        header = self.headers.get("X-Sandbox-Fault")
        if header is None:
            return self.server.state.next_fault() or Fault()
        # A request that names its own fault leaves the server-wide script untouched.
        try:
            return fault_from_header(header)
        except ValueError as exc:
            raise invalid_request("invalid_fault", str(exc), "X-Sandbox-Fault") from exc

    def _latency_s(self) -> float:
        header = self.headers.get("X-Sandbox-Latency-Ms")
        if header is None:
            return self.server.state.latency_ms / 1000
        if not header.strip().isdigit() or not is_delay(int(header)):
            raise invalid_request(
                "parameter_invalid", f"0 to {MAX_DELAY_MS} ms.", "X-Sandbox-Latency-Ms"
            )
        return int(header) / 1000

    def _authenticate(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        expected = self.server.api_key.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise ApiError(
                401,
                "authentication_error",
                "invalid_api_key",
                "Send Authorization: Bearer <the sandbox API key>.",
                headers={"WWW-Authenticate": 'Bearer realm="sandbox"'},
            )

    def _require_loopback(self) -> None:
        address = ipaddress.ip_address(self.client_address[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_loopback:
            raise ApiError(
                403, "permission_error", "loopback_only", "Admin endpoints are loopback only."
            )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # The unread chunks would be parsed as the next request: end the connection.
            self.close_connection = True
            raise ApiError(411, "invalid_request_error", "length_required", "Send Content-Length.")
        length_header = self.headers.get("Content-Length", "0").strip() or "0"
        if not length_header.isdigit():
            self.close_connection = True
            raise invalid_request("invalid_content_length", "Content-Length is not a number.")
        if int(length_header) > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, "invalid_request_error", "body_too_large", "Body too large.")
        length = int(length_header)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body, separators=(",", ":")).encode()
        content_type = "application/json"
        if isinstance(reply, RawReply):  # the data feeds' XML and broken documents
            payload, content_type = reply.raw, reply.content_type
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.drip_ms:
            self._drip(payload, reply.drip_ms / 1000)
        else:
            self.wfile.write(payload)

    def _drip(self, payload: bytes, every_s: float) -> None:
        """Send the body one byte at a time; stop when the client has gone."""
        self.close_connection = True
        try:
            for index in range(len(payload)):
                self.wfile.write(payload[index : index + 1])
                self.wfile.flush()
                time.sleep(every_s)
        except OSError:
            return

    def _drop(self) -> None:
        """Close without a response, so the client sees a reset or a remote disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer http.server's own protocol errors in JSON rather than HTML."""
        self.close_connection = True
        text = message or self.responses.get(code, ("Error",))[0]
        body = error_body("invalid_request_error", "http_error", text)
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Log each request to stderr only when the server runs verbose."""
        if self.server.verbose:
            super().log_message(format, *args)


Endpoint = Callable[[SandboxHandler, Request], Reply]


def _api(function: Callable[[Backend, Request], Reply]) -> Endpoint:
    """An endpoint of a provider module, which sees the server, not the handler."""
    return lambda handler, request: function(handler.server, request)


def _stripe_post(pattern: str, function: Callable[[Backend, Request], Reply]) -> Route[Endpoint]:
    # Stripe saves a 500 under the key once execution began, so an injected 500 is saved too.
    return Route("POST", pattern, _api(function), saves_failures=True)


INTENT = "/v1/payment_intents/{id}"
ADYEN_PAYMENT = "/adyen/v71/payments/{pspReference}"
ROUTES: tuple[Route[Endpoint], ...] = (
    Route("GET", "/healthz", SandboxHandler.get_healthz),
    Route("GET", "/v1/rates", SandboxHandler.get_rates),
    Route("POST", "/v1/charges", SandboxHandler.post_charges),
    # Stripe; the literal search path is listed before the pattern that would also match it.
    _stripe_post("/v1/payment_intents", stripe_api.create_intent),
    Route("GET", "/v1/payment_intents/search", _api(stripe_api.search_intents)),
    Route("GET", INTENT, _api(stripe_api.get_intent)),
    _stripe_post(f"{INTENT}/confirm", stripe_api.confirm_intent),
    _stripe_post(f"{INTENT}/capture", stripe_api.capture_intent),
    _stripe_post(f"{INTENT}/cancel", stripe_api.cancel_intent),
    _stripe_post("/v1/refunds", stripe_api.create_refund),
    # Adyen Checkout v71
    Route("POST", "/adyen/v71/payments", _api(adyen_api.create_payment)),
    Route("GET", ADYEN_PAYMENT, _api(adyen_api.get_payment)),
    Route("POST", f"{ADYEN_PAYMENT}/captures", _api(adyen_api.modify("captures"))),
    Route("POST", f"{ADYEN_PAYMENT}/refunds", _api(adyen_api.modify("refunds"))),
    Route("POST", f"{ADYEN_PAYMENT}/cancels", _api(adyen_api.modify("cancels"))),
    # Data feeds: ECB-shaped reference rates, a paginated JSON resource
    Route("GET", "/ecb/{file}", _api(ecb_feed.get_file)),
    Route("GET", "/data/items", _api(data_feed.get_items)),
    Route("GET", "/data/items-linked", _api(data_feed.get_linked)),
    # The sandbox's own
    Route("GET", "/_sandbox/data", _api(data_feed.get_admin)),
    Route("POST", "/_sandbox/data", _api(data_feed.post_admin)),
    Route("GET", "/_sandbox/stats", _api(admin.get_stats)),
    Route("POST", "/_sandbox/reset", _api(admin.post_reset)),
    Route("POST", "/_sandbox/faults", _api(admin.post_faults)),
    Route("GET", "/_sandbox/payments", _api(admin.list_payments)),
    Route("POST", "/_sandbox/payments", _api(admin.create_payment)),
)


class SandboxServer(ThreadingHTTPServer):
    """A thread-per-connection HTTP server carrying the sandbox's state and settings."""

    daemon_threads = True
    # Benchmarks keep hundreds of calls in flight; the default backlog of 5 would refuse them.
    request_queue_size = 512

    def __init__(
        self,
        address: tuple[str, int],
        *,
        state: SandboxState,
        api_key: str,
        verbose: bool,
        keys: ProviderKeys | None = None,
    ) -> None:
        self.state = state
        self.api_key = api_key
        # The Stripe-like API also takes the sandbox's own key, as /v1/charges does.
        self.keys = keys or ProviderKeys(
            frozenset({DEFAULT_STRIPE_API_KEY, api_key}), DEFAULT_ADYEN_API_KEY
        )
        self.verbose = verbose
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall start-up for seconds."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


def make_server(
    host: str,
    port: int,
    latency_ms: int = 0,
    *,
    api_key: str = DEFAULT_API_KEY,
    stripe_api_key: str = DEFAULT_STRIPE_API_KEY,
    adyen_api_key: str = DEFAULT_ADYEN_API_KEY,
    verbose: bool = False,
) -> SandboxServer:
    """A bound, listening sandbox server; call `serve_forever()` on it."""
    keys = ProviderKeys(frozenset({stripe_api_key, api_key}), adyen_api_key)
    return SandboxServer(
        (host, port), state=SandboxState(latency_ms), api_key=api_key, verbose=verbose, keys=keys
    )


def serve(
    host: str,
    port: int,
    latency_ms: int = 0,
    *,
    api_key: str = DEFAULT_API_KEY,
    stripe_api_key: str = DEFAULT_STRIPE_API_KEY,
    adyen_api_key: str = DEFAULT_ADYEN_API_KEY,
    verbose: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, announcing the bound address on stdout first."""
    server = make_server(
        host,
        port,
        latency_ms,
        api_key=api_key,
        stripe_api_key=stripe_api_key,
        adyen_api_key=adyen_api_key,
        verbose=verbose,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever(), which runs on this very thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    shown = f"[{host}]" if ":" in host else host
    print(f"sandbox listening on http://{shown}:{server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


def _error_reply(exc: Exception, what: str) -> Reply:
    """The JSON reply for an exception: its own for ApiError, a bare 500 for anything else."""
    if isinstance(exc, ApiError):
        return Reply(exc.status, exc.body, exc.headers)
    log.exception("sandbox failed on %s", what, exc_info=exc)
    return Reply(500, error_body("api_error", "internal_error", "The sandbox failed; see its log."))


def _fault_reply(
    dialect: Dialect,
    status: int,
    message: str,
    retry_after: int | None = None,
    should_retry: bool | None = None,
) -> Reply:
    """The reply of an injected fault or an outage, shaped as the provider shapes its errors."""
    error = fault_error(dialect, status, message, retry_after, should_retry)
    return Reply(error.status, error.body, error.headers)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid_request("invalid_json", f"The body is not valid JSON: {exc}") from exc
