"""`405 method_not_allowed` with an `Allow` header listing every method of the path.

Starlette answers from the first route whose path matches, so `/v1/jobs` (GET list and POST
submit, two routes) would say `Allow: POST` only; RFC 9110 §15.5.6 wants all of them. The
methods come from the OpenAPI document: a literal path (`/v1/jobs/batch`) names its own, not
those of a template it also fits (`/v1/jobs/{job_id}`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.errors import error_response


def _fits(template: str, path: str) -> bool:
    """Whether `path` is an instance of the path template (one segment per `{parameter}`)."""
    wanted, given = template.split("/"), path.split("/")
    return len(wanted) == len(given) and all(
        w == g or (w.startswith("{") and w.endswith("}") and g)
        for w, g in zip(wanted, given, strict=True)
    )


def _literals(template: str) -> int:
    return sum(1 for part in template.split("/") if part and not part.startswith("{"))


def documented_methods(paths: dict[str, Any], path: str) -> list[str]:
    """The methods the OpenAPI `paths` give for `path`: its literal entry, else templates."""
    if path in paths:
        entries = [paths[path]]
    else:
        fitting = [(template, item) for template, item in paths.items() if _fits(template, path)]
        # The most literal templates win: `/v1/data/secrets/{name}` over `/v1/data/{p}/{r}`.
        most = max((_literals(template) for template, _ in fitting), default=0)
        entries = [item for template, item in fitting if _literals(template) == most]
    return sorted({method.upper() for item in entries for method in item})


def install_method_not_allowed(app: FastAPI) -> None:
    """Answer 405 in the one error shape with the full `Allow` header."""

    async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        methods = documented_methods(app.openapi().get("paths", {}), request.url.path)
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        if methods:
            headers["Allow"] = ", ".join(methods)
        detail = exc.detail if isinstance(exc, HTTPException) else "Method Not Allowed"
        return error_response(405, "method_not_allowed", str(detail), None, headers)

    app.add_exception_handler(405, _method_not_allowed)
