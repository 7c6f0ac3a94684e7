"""`/docs` works without internet and offers the bearer key's Authorize button."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_load_every_asset_from_the_api_itself(client: TestClient) -> None:
    # Given the API / When /docs is opened
    page = client.get("/docs")
    # Then it references no other host, and every asset it references is served here
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000 or asset.endswith(".png"), asset
    assert "cdn" not in page.text.lower()


def test_the_openapi_document_declares_the_bearer_key(client: TestClient) -> None:
    # Given / When the OpenAPI document is read
    schema = client.get("/openapi.json").json()
    # Then a bearer scheme (the Authorize button) applies to the API, not to the health probes
    schemes = schema["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["paths"]["/v1/jobs"]["post"]["security"] == [{name: []}]
    assert not schema["paths"]["/healthz"]["get"].get("security")
    assert "/ops" not in schema["paths"]


def test_every_error_status_is_documented_with_the_one_error_shape(client: TestClient) -> None:
    # Given / When the OpenAPI document is read
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error"}
    # Then every secured operation documents 401, and every error is in the one shape
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert "401" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorBody", (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
