"""The database cannot be reached: `503 database_unavailable` with `Retry-After`, one log line.

Every database round trip is bounded (`store.db`), so an outage surfaces here as an error
within seconds: refused or reset connections, a backend terminated by the server, a reply cut
off by the watchdog, a statement or lock timeout, no pooled connection free in time. Each is a
retryable condition of ours, not the client's fault and not a bug: the request's transaction
was rolled back, so nothing was written, and the client may retry after `Retry-After`.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.errors import error_response

log = structlog.get_logger(__name__)

# Seconds a client should wait before trying again; about one round-trip bound.
RETRY_AFTER_S = 2

UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def _cause(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig or exc).__name__


def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The 503 answer, logged as one line without a traceback."""
    log.warning(
        "api.database_unavailable",
        method=request.method,
        path=request.url.path,
        error=_cause(exc),
    )
    return error_response(
        503,
        "database_unavailable",
        "the database is unavailable; retry later",
        {"retry_after_s": RETRY_AFTER_S},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def install_unavailable_handlers(app: FastAPI) -> None:
    """Answer database outages with 503 instead of 500."""

    async def _handler(request: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(request, exc)

    for error in UNAVAILABLE:
        app.add_exception_handler(error, _handler)
