"""The JSON error object every sandbox endpoint answers with, shaped like Stripe's."""

from __future__ import annotations

from typing import Any


def error_body(type_: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A `{"error": {...}}` body; `extra` adds fields such as `param` or `decline_code`."""
    error: dict[str, Any] = {"type": type_, "code": code, "message": message}
    error.update({name: value for name, value in extra.items() if value is not None})
    return {"error": error}


class ApiError(Exception):
    """A request the sandbox refuses; the handler turns it into a JSON error response."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(type_, code, message, param=param)
        self.headers = headers or {}


def invalid_request(code: str, message: str, param: str | None = None) -> ApiError:
    """A 400 `invalid_request_error`, the commonest refusal."""
    return ApiError(400, "invalid_request_error", code, message, param=param)
