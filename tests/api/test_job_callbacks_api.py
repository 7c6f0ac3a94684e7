"""A job's own `callback_url`: checked at submit (single and batch), signed with the tenant's
callback secret, which is shown once, stored sealed and rotatable."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.webhook_models import WebhookCallbackSecret
from tests.api.conftest import auth, error_of, job_rows, rates_job

SECRET = "/v1/webhook-callbacks/secret"
PUBLIC = "93.184.216.34"
PRIVATE_NAMES = {"intranet.example": "10.1.2.3", "metadata.example": "169.254.169.254"}


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The client with DNS answered by a stub: two names are private, every other is public."""

    def resolve(host: str, port: int) -> list[str]:
        return [PRIVATE_NAMES.get(host, PUBLIC)]

    client.app.state.webhook_resolver = resolve  # type: ignore[attr-defined]
    return client


@pytest.fixture
def signing(api: TestClient, tenant_key: IssuedKey) -> str:
    """The tenant's callback secret, created through the API."""
    created = api.post(SECRET, headers=auth(tenant_key))
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


REFUSED_CALLBACKS = [
    ("http://127.0.0.1:8080/cb", "loopback"),
    ("http://[::1]/cb", "loopback"),
    ("http://10.0.0.7/cb", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link_local"),
    ("http://2130706433/cb", "numeric_host"),
    ("http://intranet.example/cb", "private"),
    ("http://metadata.example/cb", "link_local"),
    ("ftp://example.com/cb", "scheme"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_CALLBACKS)
def test_a_private_callback_url_is_refused_naming_the_field_and_nothing_is_written(
    api: TestClient, tenant_key: IssuedKey, settings: Settings, signing: str, url: str, reason: str
) -> None:
    # Given loopback is not allowed (anything but development and tests)
    assert settings.outbound_allow_loopback is False
    # When a job is submitted alone, and in a batch after a valid job, with that callback URL
    single = api.post("/v1/jobs", json=rates_job(callback_url=url), headers=auth(tenant_key))
    batch = api.post(
        "/v1/jobs/batch",
        json={"jobs": [rates_job(), rates_job(callback_url=url)]},
        headers=auth(tenant_key),
    )
    # Then both are 422 naming the field and the rule, and no job was written
    error = error_of(single, 422, "url_refused")
    assert error["details"]["field"] == "callback_url"
    assert error["details"]["loc"] == ["body", "callback_url"]
    assert error["details"]["reason"] == reason
    error = error_of(batch, 422, "url_refused")
    assert error["details"]["loc"] == ["body", "jobs", 1, "callback_url"]
    assert job_rows(settings) == []


def test_a_callback_url_needs_the_callback_secret(
    api: TestClient, tenant_key: IssuedKey, settings: Settings
) -> None:
    # Given a tenant that never created its callback secret
    # When it submits a job with a public callback URL
    answer = api.post(
        "/v1/jobs",
        json=rates_job(callback_url="https://hooks.example/cb"),
        headers=auth(tenant_key),
    )
    # Then it is refused, naming the field, and nothing is written
    error = error_of(answer, 422, "callback_secret_missing")
    assert error["details"]["field"] == "callback_url"
    assert job_rows(settings) == []


def test_an_accepted_callback_url_is_stored_on_the_job(
    api: TestClient, tenant_key: IssuedKey, settings: Settings, signing: str
) -> None:
    url = "https://hooks.example/cb?job=1"
    # When a job, and a batch of two, carry public callback URLs
    single = api.post("/v1/jobs", json=rates_job(callback_url=url), headers=auth(tenant_key))
    batch = api.post(
        "/v1/jobs/batch",
        json={"jobs": [rates_job(callback_url=url), rates_job()]},
        headers=auth(tenant_key),
    )
    # Then they are accepted and the rows (and the job as shown) keep the URL
    assert single.status_code == 202, single.text
    assert single.json()["callback_url"] == url
    assert batch.status_code == 202, batch.text
    stored = sorted(str(j.callback_url) for j in job_rows(settings, tenant_key.tenant_id))
    assert stored == ["None", url, url]


def test_the_callback_secret_is_shown_once_sealed_and_rotatable(
    api: TestClient, tenant_key: IssuedKey, settings: Settings, signing: str
) -> None:
    # Given a created secret: a second create is a conflict, a read never shows it
    assert signing.startswith("whsec_")
    error_of(api.post(SECRET, headers=auth(tenant_key)), 409, "secret_exists")
    read = api.get(SECRET, headers=auth(tenant_key)).json()
    assert read["secret"] is None and read["previous_secret_valid_until"] is None
    with get_database(settings).session() as session:
        row = session.get(WebhookCallbackSecret, tenant_key.tenant_id)
        assert row is not None and signing not in row.secret_sealed
    # When it is rotated with a grace period
    rotated = api.post(f"{SECRET}/rotate", json={"grace_s": 60}, headers=auth(tenant_key))
    # Then a new secret is shown once and the old one is kept for the grace
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != signing
    assert body["previous_secret_valid_until"] is not None
    with get_database(settings).session() as session:
        count = session.scalar(select(func.count()).select_from(WebhookCallbackSecret))
        assert count == 1


def test_another_tenant_has_no_callback_secret_of_its_own(
    api: TestClient, tenant_key: IssuedKey, other_tenant_key: IssuedKey, signing: str
) -> None:
    error_of(api.get(SECRET, headers=auth(other_tenant_key)), 404, "not_found")
    error_of(api.post(f"{SECRET}/rotate", headers=auth(other_tenant_key)), 404, "not_found")
    assert api.get("/v1/webhook-callbacks/deliveries", headers=auth(other_tenant_key)).json() == []


def test_a_grace_that_is_not_a_number_is_refused(
    api: TestClient, tenant_key: IssuedKey, signing: str
) -> None:
    for bad in (False, "60"):
        answer = api.post(f"{SECRET}/rotate", json={"grace_s": bad}, headers=auth(tenant_key))
        error_of(answer, 422, "validation_error")
    assert api.post(f"{SECRET}/rotate", json={"grace_s": 60}, headers=auth(tenant_key)).is_success
