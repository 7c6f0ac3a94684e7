"""Requests: JSON bodies only (RFC 8259), parsed once with bounds; every string storable.

`JsonBodyRoute` is the route class of every router (tests/api/test_route_class.py holds it).
A route built with it answers before its handler runs:
- `422 validation_error` naming the query or path parameter whose value (or name) holds a NUL
  or a lone surrogate, on every route, so no handler or query ever sees one (a form a handler
  reads itself, as the ops console's, is checked by it with `check_fields`);
- `415 unsupported_media_type` for a body not sent as `application/json` (or `+json`);
- `400 malformed_json` for bytes that are not UTF-8 JSON, nest deeper than `MAX_DEPTH`, carry
  an integer longer than Python converts (4,300 digits) or a non-finite number;
- `422 validation_error` naming the place of a string with a NUL or a lone surrogate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Iterable
from email.message import Message
from typing import Any

from fastapi import Request, Response
from fastapi.params import Form
from fastapi.routing import APIRoute

from api.errors import ApiError
from api.inputs import unstorable_reason

# Deeper than any payload a job type accepts, far below the interpreter's recursion limit.
MAX_DEPTH = 32

Loc = list[str | int]


class MalformedJsonError(ValueError):
    """The bytes are not a JSON document this API accepts."""


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise MalformedJsonError(f"the number {text[:20]} is out of range")
    return number


def _no_constants(name: str) -> Any:
    raise MalformedJsonError(f"{name} is not JSON")


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The document in `body`; MalformedJsonError when it is not one (see module docstring)."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constants)
    except MalformedJsonError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, digits
        raise MalformedJsonError(type(exc).__name__) from None
    if depth_of(value) > max_depth:
        raise MalformedJsonError(f"the document nests deeper than {max_depth} levels")
    return value


def depth_of(value: Any) -> int:
    """How many arrays/objects deep a parsed document goes (a scalar is 0); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in node)
    return deepest


def first_unstorable(value: Any, loc: Loc) -> tuple[Loc, str] | None:
    """The place and reason of the first string (key or value) a database would refuse."""
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            reason = unstorable_reason(node)
            if reason is not None:
                return where, reason
        elif isinstance(node, dict):
            for key, child in node.items():
                reason = unstorable_reason(key)
                if reason is not None:
                    return [*where, key.encode("utf-8", "backslashreplace").decode()], reason
                stack.append((child, [*where, key]))
        elif isinstance(node, list):
            stack.extend((child, [*where, index]) for index, child in enumerate(node))
    return None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def checked_json(body: bytes, content_type: str | None) -> Any:
    """The body's document, or the ApiError (415, 400, 422) that answers it."""
    if not _is_json(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as application/json",
            {"content_type": (content_type or "")[:100]},
        )
    try:
        document = parse_json(body)
    except MalformedJsonError as exc:
        raise ApiError(
            400, "malformed_json", "the request body is not valid JSON", {"reason": str(exc)}
        ) from None
    bad = first_unstorable(document, ["body"])
    if bad is not None:
        loc, reason = bad
        raise ApiError(
            422,
            "validation_error",
            "the request is invalid",
            [{"loc": loc, "message": f"the text {reason}", "type": "string_unstorable"}],
        )
    return document


def check_fields(where: str, fields: Iterable[tuple[str, str]]) -> None:
    """Raise `422 validation_error` naming the first (name, value) a database would refuse."""
    for name, value in fields:
        reason = unstorable_reason(name) or unstorable_reason(value)
        if reason is not None:
            raise ApiError(
                422,
                "validation_error",
                "the request is invalid",
                [
                    {
                        "loc": [where, name],
                        "message": f"the text {reason}",
                        "type": "string_unstorable",
                    }
                ],
            )


def check_parameters(request: Request) -> None:
    """Raise `422 validation_error` for a query or path parameter a database would refuse."""
    check_fields("query", request.query_params.multi_items())
    check_fields("path", ((n, v) for n, v in request.path_params.items() if isinstance(v, str)))


class JsonBodyRoute(APIRoute):
    """An APIRoute whose parameters are checked, and whose JSON body is parsed and checked by
    `checked_json`, before FastAPI reads them. A form body (the ops console's HTML forms, read
    by its handlers) is left to its handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the parameter check and, for a JSON body, the body check."""
        handler = super().get_route_handler()
        json_body = self.body_field is not None and not isinstance(self.body_field.field_info, Form)

        async def checked(request: Request) -> Response:
            check_parameters(request)
            if json_body:
                body = await request.body()
                if body:
                    # Starlette's Request.json() returns this cached value: FastAPI parses nothing.
                    request._json = checked_json(body, request.headers.get("content-type"))
            return await handler(request)

        return checked
