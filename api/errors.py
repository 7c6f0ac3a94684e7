"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from config.redaction import redact_text, redact_value

log = structlog.get_logger(__name__)

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}

# The codes of api/screening.py's refusals; a field type that screens (api/inputs.Screened)
# raises a validation error of one of these types, answered under that code.
SCREENING_CODES = frozenset({"card_data_refused", "secret_refused"})


class ApiError(Exception):
    """An error the API answers on purpose, with a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one shape every error body has."""
    # Redacted here, once for every error: an echoed input never carries a PAN or a key back.
    clean = {
        "code": code,
        "message": redact_text(escaped(message)),
        "details": redact_value(escaped(details)),
    }
    body = {"error": clean}
    return JSONResponse(status_code=status, content=body, headers=headers)


def escaped(value: Any) -> Any:
    """`value` with every string UTF-8 encodable: a lone surrogate an input carried becomes
    `\\udXXX` text, so echoing it back can never fail the answer."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {escaped(k): escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escaped(v) for v in value]
    return value


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "message": err.get("msg", ""), "type": err.get("type")}
        for err in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, answer in the one JSON shape without a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        for err in errors:
            if err.get("type") in SCREENING_CODES:
                kind = (err.get("ctx") or {}).get("kind")
                return error_response(
                    422, err["type"], err.get("msg", ""), {"loc": list(err["loc"]), "kind": kind}
                )
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_response(
                400, "malformed_json", "the request body is not valid JSON", _clean(errors)
            )
        return error_response(422, "validation_error", "the request is invalid", _clean(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unhandled", path=request.url.path)
        return error_response(500, "internal_error", "an internal error occurred")
