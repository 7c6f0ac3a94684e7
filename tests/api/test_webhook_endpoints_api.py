"""The webhook endpoints API: register (secret once, sealed), refuse unsafe URLs, rotate, own."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.webhook_models import WebhookEndpoint
from tests.api.conftest import auth, error_of
from tests.integrations.test_outbound import REFUSED

PATH = "/v1/webhook-endpoints"
PUBLIC = "93.184.216.34"


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The client, with DNS answered by a stub: every name is a public address."""
    client.app.state.webhook_resolver = lambda host, port: [PUBLIC]  # type: ignore[attr-defined]
    return client


def register(
    api: TestClient, key: IssuedKey, url: str = "https://hooks.example/in", **body: object
):
    return api.post(PATH, json={"url": url, **body}, headers=auth(key))


def test_register_shows_the_secret_once_and_stores_it_sealed(
    api: TestClient, tenant_key: IssuedKey, settings: Settings
) -> None:
    # When a tenant registers an endpoint
    created = register(api, tenant_key, event_types=["job.succeeded", "job.dead"])
    # Then the answer holds a whsec_ secret, later reads never do, and the row holds no secret
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["enabled"] is True
    assert body["event_types"] == ["job.dead", "job.succeeded"]
    read = api.get(f"{PATH}/{body['id']}", headers=auth(tenant_key)).json()
    assert read["secret"] is None and read["deliveries"] == {}
    assert all(e["secret"] is None for e in api.get(PATH, headers=auth(tenant_key)).json())
    with get_database(settings).session() as session:
        row = session.scalars(select(WebhookEndpoint)).one()
        assert body["secret"] not in row.secret_sealed and "whsec_" not in row.secret_sealed


def test_every_unsafe_url_is_refused_at_registration(
    api: TestClient, tenant_key: IssuedKey, settings: Settings
) -> None:
    # Given every refused form (tests/integrations/test_outbound.py) / When each is registered
    for url, reason in REFUSED:
        # Then each is a 422 naming its rule, and nothing is stored
        error = error_of(register(api, tenant_key, url), 422, "url_refused")
        assert error["details"]["reason"] == reason, url
    with get_database(settings).session() as session:
        assert session.scalars(select(WebhookEndpoint)).all() == []


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "169.254.169.254", "::1", "fd00::5", "100.100.1.1"]
)
def test_a_name_resolving_to_a_private_address_is_refused(
    api: TestClient, tenant_key: IssuedKey, address: str
) -> None:
    api.app.state.webhook_resolver = lambda host, port: [PUBLIC, address]  # type: ignore[attr-defined]
    error_of(register(api, tenant_key, "https://sneaky.example/"), 422, "url_refused")


def test_unknown_event_types_are_refused(api: TestClient, tenant_key: IssuedKey) -> None:
    error = error_of(
        register(api, tenant_key, event_types=["job.exploded"]), 422, "validation_error"
    )
    assert error["details"]["unknown"] == ["job.exploded"]


def test_another_tenants_endpoint_is_not_found(
    api: TestClient, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    endpoint_id = register(api, tenant_key).json()["id"]
    for method in ("get", "delete"):
        response = getattr(api, method)(f"{PATH}/{endpoint_id}", headers=auth(other_tenant_key))
        error_of(response, 404, "not_found")
    error_of(
        api.get(f"{PATH}/{uuid.uuid4()}/deliveries", headers=auth(tenant_key)), 404, "not_found"
    )
    error_of(api.get(f"{PATH}/not-a-uuid", headers=auth(tenant_key)), 404, "not_found")


def test_patch_rechecks_the_url_and_toggles_enabled(api: TestClient, tenant_key: IssuedKey) -> None:
    endpoint_id = register(api, tenant_key).json()["id"]
    url = f"{PATH}/{endpoint_id}"
    error_of(
        api.patch(url, json={"url": "http://0x7f000001/"}, headers=auth(tenant_key)),
        422,
        "url_refused",
    )
    off = api.patch(url, json={"enabled": False}, headers=auth(tenant_key)).json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by the tenant"
    on = api.patch(url, json={"enabled": True}, headers=auth(tenant_key)).json()
    assert on["enabled"] is True and on["disabled_reason"] is None
    assert api.delete(url, headers=auth(tenant_key)).status_code == 204
    error_of(api.get(url, headers=auth(tenant_key)), 404, "not_found")


def test_rotation_returns_a_new_secret_and_keeps_the_old_for_the_grace(
    api: TestClient, tenant_key: IssuedKey
) -> None:
    created = register(api, tenant_key).json()
    rotated = api.post(
        f"{PATH}/{created['id']}/rotate-secret", json={"grace_s": 60}, headers=auth(tenant_key)
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in (None, created["secret"])
    assert rotated.json()["previous_secret_valid_until"] is not None
