"""The OpenAPI side of errors: the one error body schema and the statuses each route answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

# Why each status happens, as the document describes it.
_WHY = {
    400: "malformed JSON (`malformed_json`) or a provider event that is not one",
    401: "missing, invalid or revoked API key (`unauthorized`)",
    403: "the key's role may not do this (`forbidden`): admin or operator routes",
    404: "nothing of this tenant's by that name or id (`not_found`)",
    409: "conflicts with the job's state or an earlier request (`conflict` family)",
    413: "the body exceeds the size limit (`payload_too_large`)",
    415: "the body is not `application/json` (`unsupported_media_type`)",
    422: "the request is invalid (`validation_error` and friends); nothing written",
    429: "over the key's request rate (`rate_limited`), concurrent waits (`too_many_waits`), "
    "the tenant's open-job quota (`quota_exceeded`) or the address's budget of failed "
    "authentications (`too_many_auth_failures`); see `Retry-After`",
    503: "a dependency is unavailable (`unavailable`); retry after `Retry-After`",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


class ErrorInfo(BaseModel):
    """What went wrong: a stable code, a sentence for people, details for programs."""

    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: ErrorInfo


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the error schema (and `Retry-After`)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _WHY[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    return responses


# Every route behind an API key can answer these.
AUTHED = (401, 429, 503)
# Every route taking a JSON body can answer these too.
JSON_BODY = (400, 413, 415, 422)


def _error_entry(status: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "description": _WHY[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    if status in (429, 503):
        entry["headers"] = _RETRY_AFTER
    return entry


def document_errors(schema: dict[str, Any]) -> None:
    """Give every operation the error statuses it can answer, all with the one error schema.

    Behind an API key: 401, 429, 503. With a JSON body: 400, 413, 415, 422. With parameters:
    422. Route-specific statuses (404, 409) come from the routes' own `responses=`; FastAPI's
    own 422 schema (`HTTPValidationError`) is replaced, as the API never answers in it.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            statuses: set[int] = set()
            if operation.get("security"):
                statuses.update(AUTHED)
                statuses.add(403)  # a key whose role may not use the route
            if "{" in path:
                statuses.add(404)  # what the path names is not the tenant's
            if method in ("post", "put", "patch", "delete"):
                statuses.add(409)  # conflicts with the state of what it acts on
            if "requestBody" in operation:
                statuses.update(JSON_BODY)
            if operation.get("parameters"):
                statuses.add(422)
            responses = operation.setdefault("responses", {})
            for code in list(responses):
                if code.isdigit() and int(code) >= 400:
                    statuses.add(int(code))
            for status in sorted(statuses):
                responses[str(status)] = _error_entry(status)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


# Where a submitted job's id goes next (OpenAPI 3 links): read it, cancel it, retry it.
_JOB_LINKS = {
    "ReadJob": ("/v1/jobs/{job_id}", "get"),
    "CancelJob": ("/v1/jobs/{job_id}/cancel", "post"),
    "RetryJob": ("/v1/jobs/{job_id}/retry", "post"),
}


def link_jobs(schema: dict[str, Any]) -> None:
    """Link the submit's answers to the operations taking the job id it returns."""
    paths = schema.get("paths", {})
    submit = paths.get("/v1/jobs", {}).get("post")
    if submit is None:
        return
    links = {
        name: {
            "operationId": paths[path][method]["operationId"],
            "parameters": {"job_id": "$response.body#/id"},
        }
        for name, (path, method) in _JOB_LINKS.items()
        if method in paths.get(path, {})
    }
    for status in ("200", "202"):
        if status in submit["responses"]:
            submit["responses"][status]["links"] = links


def install_openapi(app: FastAPI) -> None:
    """Serve the generated document with `document_errors` applied, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_errors(schema)
            link_jobs(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
