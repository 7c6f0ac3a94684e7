"""One log line per API call, and the correlation id that follows a request into its jobs.

The id is taken from `X-Request-ID` (when it is a short token of safe characters), else from
the trace id of a W3C `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header),
else generated; it is answered in `X-Request-ID`, stored on every job the request submits
(`jobs.correlation_id`), and bound to structlog's context for every line logged meanwhile.
The line names the route template (`/v1/jobs/{job_id}`), never the raw path, query, headers or
body: no payloads, keys or card numbers reach the log.
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("conveyor.request")

REQUEST_ID_HEADER = "X-Request-ID"
# What a caller's id may look like to be kept; anything else is replaced by a generated one.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_ZERO_TRACE = "0" * 32

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# A holder, not a value: a dependency run in a copied context (the thread pool) still reaches it.
_tenant: ContextVar[dict[str, str] | None] = ContextVar("request_tenant", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the request being served, if any."""
    return _correlation_id.get()


def note_tenant(tenant: str) -> None:
    """Name the authenticated tenant on this request's log line."""
    holder = _tenant.get()
    if holder is not None:
        holder["tenant"] = tenant
    structlog.contextvars.bind_contextvars(tenant=tenant)


def correlation_id_from(headers: dict[str, str]) -> str:
    """The caller's `X-Request-ID`, else the `traceparent` trace id, else a new UUID hex."""
    given = headers.get("x-request-id", "").strip()
    if _SAFE_ID.match(given):
        return given
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip())
    if match and match.group(1) != _ZERO_TRACE:
        return match.group(1)
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestLog:
    """ASGI middleware: correlation id in, header out, one `http.request` line per call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cid = correlation_id_from({k.lower(): v for k, v in request.headers.items()})
        token = _correlation_id.set(cid)
        holder: dict[str, str] = {}
        tenant_token = _tenant.set(holder)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=cid)
        status = {"code": 500}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), cid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                route=_route_template(scope),
                status=status["code"],
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                tenant=holder.get("tenant"),
            )
            _correlation_id.reset(token)
            _tenant.reset(tenant_token)
            structlog.contextvars.clear_contextvars()
