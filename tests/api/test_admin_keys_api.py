"""`/v1/admin/keys`: admins manage keys over HTTP; nobody else may; revocation within a second."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.roles import Role
from tests.api.conftest import auth, error_of


@pytest.fixture
def admin_key(settings: Settings) -> IssuedKey:
    """An admin's key."""
    with get_database(settings).session() as session:
        return create_api_key(session, "platform", "root", Role.ADMIN)


def test_an_admin_issues_lists_and_revokes_an_operator_key(
    client: TestClient, admin_key: IssuedKey
) -> None:
    # Given an admin
    # When it issues an operator key that expires in a week, and the key is used
    issued = client.post(
        "/v1/admin/keys",
        json={"tenant": "oncall", "name": "pager", "role": "operator", "expires_in_days": 7},
        headers=auth(admin_key),
    )
    secret = issued.json()["secret"]
    used = client.get("/ops", headers=auth(secret))
    listed = client.get("/v1/admin/keys?tenant=oncall", headers=auth(admin_key))
    # Then the key works on the console, and the list shows it without its secret
    assert issued.status_code == 201, issued.text
    assert used.status_code == 200
    [row] = listed.json()
    assert (row["role"], row["prefix"], row["revoked_at"]) == ("operator", secret[:10], None)
    assert row["expires_at"] is not None and secret not in listed.text
    # When the admin revokes it
    revoked = client.post(f"/v1/admin/keys/{row['id']}/revoke", headers=auth(admin_key))
    time.sleep(1.05)
    # Then within a second it no longer opens anything
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/ops", headers=auth(secret)).status_code == 401


@pytest.mark.parametrize("role", [Role.TENANT, Role.OPERATOR])
def test_only_admins_manage_keys(client: TestClient, settings: Settings, role: Role) -> None:
    # Given a tenant's or an operator's key
    with get_database(settings).session() as session:
        key = create_api_key(session, "someone", "k", role)
    # When it tries to list or create keys / Then 403, and nothing is created
    error_of(client.get("/v1/admin/keys", headers=auth(key)), 403, "forbidden")
    error_of(
        client.post("/v1/admin/keys", json={"tenant": "x", "role": "admin"}, headers=auth(key)),
        403,
        "forbidden",
    )
