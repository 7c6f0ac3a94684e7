"""`/docs` that works offline: Swagger UI served from the `swagger-ui-bundle-v2` package.

FastAPI's default page loads Swagger UI from a CDN, so it is blank without internet. Here the
assets come from `/docs/assets/` and the OpenAPI document declares the bearer API key
(`components.securitySchemes.bearer`), which gives the page its Authorize button.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid_payload"]},
                "message": {"type": "string"},
                "details": {"description": "what was wrong, where (any JSON; often a list)"},
            },
        }
    },
}
ERRORS = {
    "400": "malformed JSON (`malformed_json`)",
    "401": "missing, unknown, revoked or expired API key",
    "403": "the key's role may not use this route",
    "404": "no such resource, or another tenant's",
    "409": "conflicts with the resource's state or an earlier request",
    "413": "body over CONVEYOR_MAX_BODY_BYTES",
    "422": "the request is invalid (`validation_error`, `invalid_payload`, …)",
    "429": "rate limited",
    "500": "an internal error (no traceback is ever returned)",
}


def _document_errors(schema: dict[str, Any]) -> None:
    """Every operation's error statuses answer the one error shape (api/errors.py)."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            statuses = ["422", "500"]
            if path not in OPEN_PATHS:
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            if method in ("post", "put", "patch"):
                statuses += ["400", "409", "413", "429"]
            for status in statuses:
                responses[status] = {
                    "description": ERRORS[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets locally (the document itself: `api/openapi.py`)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )
