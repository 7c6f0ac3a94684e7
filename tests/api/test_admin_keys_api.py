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


@pytest.mark.parametrize(
    "names",
    [
        {"tenant": "demo\u200b"},  # zero-width space (Cf)
        {"tenant": "\u202eomed"},  # right-to-left override (Cf)
        {"tenant": "de\u2066mo"},  # left-to-right isolate (Cf)
        {"tenant": "demo\ufeff"},  # zero-width no-break space (Cf)
        {"tenant": "demo", "name": "a\u2028b"},  # line separator (Zl)
        {"tenant": "demo", "name": "a\u2029b"},  # paragraph separator (Zp)
        {"tenant": "demo\ue000"},  # private use (Co)
        {"tenant": "de\u00a0mo"},  # no-break space: white space that is not a plain space
        {"tenant": "demo", "name": "a\tb"},  # tab
        {"tenant": "cafe\u0301"},  # decomposed é: not NFC
    ],
)
def test_names_with_invisible_bidirectional_or_unnormalised_characters_are_refused(
    client: TestClient, settings: Settings, admin_key: IssuedKey, names: dict[str, str]
) -> None:
    # Given an admin issuing a key whose tenant or name holds a character people cannot see
    # When the key is asked for
    response = client.post(
        "/v1/admin/keys", json={"role": "operator"} | names, headers=auth(admin_key)
    )
    # Then 422 names the field, and no such tenant's key exists
    error = error_of(response, 422, "validation_error")
    field = "name" if "name" in names else "tenant"
    assert any(e["loc"] == ["body", field] for e in error["details"]), error
    listed = client.get("/v1/admin/keys", headers=auth(admin_key)).json()
    assert all(row["tenant"] in {"platform"} for row in listed)


def test_a_name_with_an_inner_space_and_composed_accents_is_accepted(
    client: TestClient, admin_key: IssuedKey
) -> None:
    # Given a tenant and name with a plain inner space and an NFC accent
    # When the key is asked for
    response = client.post(
        "/v1/admin/keys",
        json={"tenant": "caf\u00e9 demo", "name": "on call", "role": "operator"},
        headers=auth(admin_key),
    )
    # Then it is issued
    assert response.status_code == 201, response.text
