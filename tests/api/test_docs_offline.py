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
