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
    # Then the bearer scheme (the Authorize button) applies, except to the health probes
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert "/ops" not in schema["paths"]


def test_every_error_status_is_documented_with_the_one_error_shape(client: TestClient) -> None:
    # Given / When the OpenAPI document is read
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["Error"]
    # Then every operation documents 422 and 500, and secured ones 401, all in the error shape
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"422", "500"} | ({"401"} if operation.get("security") != [] else set())
            assert expected <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
