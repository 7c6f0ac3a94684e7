"""The JSON error objects the sandbox answers with: Stripe's `{"error": {...}}` and Adyen's."""

from __future__ import annotations

from typing import Any, Literal

Dialect = Literal["stripe", "adyen"]
# The header each provider uses to say "retrying this will (not) help".
HINT_HEADERS: dict[Dialect, str] = {"stripe": "Stripe-Should-Retry", "adyen": "transient-error"}


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
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else error_body(type_, code, message, param=param)
        self.headers = headers or {}


def invalid_request(code: str, message: str, param: str | None = None) -> ApiError:
    """A 400 `invalid_request_error`, the commonest refusal."""
    return ApiError(400, "invalid_request_error", code, message, param=param)


def adyen_error(
    status: int,
    code: str,
    message: str,
    error_type: str = "validation",
    headers: dict[str, str] | None = None,
) -> ApiError:
    """A refusal in Adyen's shape: `{status, errorCode, message, errorType}`."""
    body = {"status": status, "errorCode": code, "message": message, "errorType": error_type}
    return ApiError(status, error_type, code, message, headers=headers, body=body)


def fault_error(
    dialect: Dialect,
    status: int,
    message: str,
    retry_after: int | None = None,
    should_retry: bool | None = None,
) -> ApiError:
    """The answer of an injected fault or an outage, in the provider's own shape and hint header."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if should_retry is not None:
        headers[HINT_HEADERS[dialect]] = "true" if should_retry else "false"
    if dialect == "adyen":
        return adyen_error(status, f"00_{status}", message, "internal", headers)
    return ApiError(status, "api_error", "sandbox_fault", message, headers=headers)
