"""Every ops-console page refuses a query parameter it cannot honour (422 naming it), instead
of answering 200 unfiltered: an HTML page for a browser, the JSON error shape if asked."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.roles import Role
from tests.api.conftest import auth

JOB = "00000000-0000-4000-8000-000000000001"  # no such job: the parameter is refused first


@pytest.fixture
def operator_key(settings: Settings) -> IssuedKey:
    """An operator's key, of its own tenant."""
    with get_database(settings).session() as session:
        return create_api_key(session, f"ops-{uuid.uuid4().hex[:6]}", "pager", Role.OPERATOR)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/ops/jobs?state=bogus", "state"),
        ("/ops/jobs?error_class=bogus", "error_class"),
        ("/ops/jobs?provider=bogus", "provider"),
        ("/ops/jobs?limit=abc", "limit"),
        ("/ops/jobs?cursor=zzz", "cursor"),
        ("/ops/jobs?created_after=0", "created_after"),
        ("/ops/jobs?state=dead&state=failed", "state"),
        ("/ops/audit?cursor=zzz&limit=-1", "cursor"),
        ("/ops/stuck?older_than=x", "older_than"),
        ("/ops?queue=x", "queue"),
        ("/ops/schedules?name=x", "name"),
        (f"/ops/jobs/{JOB}?page=2", "page"),
    ],
)
def test_a_console_page_refuses_a_parameter_it_cannot_honour_naming_it(
    client: TestClient, operator_key: IssuedKey, path: str, field: str
) -> None:
    # When an operator's browser asks a console page with a parameter it cannot honour
    page = client.get(path, headers={**auth(operator_key), "Accept": "text/html"})
    # Then it is a 422 page naming the parameter, not the unfiltered page
    assert page.status_code == 422, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert f"<code>{field}</code>" in page.text
    # And a client asking for JSON gets the API's error shape, naming the same field
    answer = client.get(path, headers={**auth(operator_key), "Accept": "application/json"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    "path",
    [
        "/ops",
        "/ops/jobs",
        "/ops/jobs?state=dead&provider=sandbox&error_class=transient&type=x&tenant=acme",
        "/ops/jobs?state=&provider=&error_class=&type=&tenant=",
        "/ops/stuck",
        "/ops/schedules",
        "/ops/audit",
    ],
)
def test_a_console_page_with_the_parameters_it_takes_answers_200(
    client: TestClient, operator_key: IssuedKey, path: str
) -> None:
    # When an operator opens a page with only the parameters it takes (blank means any)
    page = client.get(path, headers=auth(operator_key))
    # Then it is shown
    assert page.status_code == 200, page.text
