"""API keys: roles, expiry, last use, and revocation that takes effect within one second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import create_api_key, find_key, list_keys
from store.models import AuditEvent
from store.roles import Role
from store.types import utcnow
from tests.api.conftest import auth
from tests.support.procs import ROOT


def conveyor(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `conveyor` CLI against the test's database."""
    env = {**os.environ, "CONVEYOR_DATABASE_URL": settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_revoked_key_is_refused_within_one_second_on_every_instance(settings: Settings) -> None:
    # Given a key two API instances have each just verified (and cached)
    with get_database(settings).session() as session:
        issued = create_api_key(session, "acme", "ci")
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert one.get("/v1/jobs", headers=auth(issued)).status_code == 200
        assert two.get("/v1/jobs", headers=auth(issued)).status_code == 200
        # When it is revoked with `conveyor keys revoke <prefix>`
        result = conveyor(settings, "keys", "revoke", issued.secret[:10])
        revoked_at = time.monotonic()
        assert result.returncode == 0, result.stderr
        time.sleep(max(0.0, 1.05 - (time.monotonic() - revoked_at)))
        # Then one second later both instances refuse it
        assert one.get("/v1/jobs", headers=auth(issued)).status_code == 401
        assert two.get("/v1/jobs", headers=auth(issued)).status_code == 401
    with get_database(settings).session() as session:
        actions = [
            e.action for e in session.query(AuditEvent).filter_by(tenant_id=issued.tenant_id)
        ]
    assert actions == ["key.revoke"]


def test_rotate_issues_a_working_key_and_retires_the_old_one(
    client: TestClient, settings: Settings
) -> None:
    # Given an operator key
    with get_database(settings).session() as session:
        old = create_api_key(session, "ops-team", "pager", Role.OPERATOR)
    # When it is rotated from the CLI
    result = conveyor(settings, "keys", "rotate", str(old.key_id))
    new_secret = result.stdout.strip()
    time.sleep(1.05)
    # Then the new key works with the same role, and the old one does not
    assert result.returncode == 0, result.stderr
    assert new_secret.startswith("cvk_") and new_secret != old.secret
    assert client.get("/v1/jobs", headers=auth(new_secret)).status_code == 200
    assert client.get("/v1/jobs", headers=auth(old)).status_code == 401
    with get_database(settings).session() as session:
        keys = {k.prefix: k for k in list_keys(session, "ops-team")}
    assert keys[new_secret[:10]].role is Role.OPERATOR
    assert keys[old.secret[:10]].revoked_at is not None


def test_an_expired_key_is_refused_and_a_used_key_shows_its_last_use(
    client: TestClient, settings: Settings
) -> None:
    # Given a key that expired a minute ago and one that is valid for a day
    with get_database(settings).session() as session:
        expired = create_api_key(session, "acme", "old", expires_at=utcnow() - timedelta(minutes=1))
        fresh = create_api_key(session, "acme", "new", expires_at=utcnow() + timedelta(days=1))
    # When both are used
    refused = client.get("/v1/jobs", headers=auth(expired))
    accepted = client.get("/v1/jobs", headers=auth(fresh))
    # Then only the valid one works, and it records when it was used
    assert (refused.status_code, accepted.status_code) == (401, 200)
    with get_database(settings).session() as session:
        used = find_key(session, str(fresh.key_id))
        assert used is not None and used.last_used_at is not None


def test_keys_create_and_list_from_the_cli_show_role_and_expiry(settings: Settings) -> None:
    # Given / When an admin key is created with an expiry and the keys are listed
    created = conveyor(
        settings, "keys", "create", "--tenant", "ops", "--role", "admin", "--expires-in-days", "30"
    )
    listed = conveyor(settings, "keys", "list", "--tenant", "ops")
    # Then the secret is printed once, and the list shows the role, never the secret
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("cvk_")
    assert listed.returncode == 0, listed.stderr
    assert "admin" in listed.stdout and secret[:10] in listed.stdout
    assert secret not in listed.stdout
