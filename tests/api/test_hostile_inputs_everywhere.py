"""Every route refuses hostile input the way `/v1/jobs` does (issue 11's kinds, on all routes):
415/400 for bodies that are not JSON, 422 for NULs, lone surrogates, out-of-range datetimes,
lax types, foreign cursors and card data, never a 5xx and never a row written (SQLite and
PostgreSQL)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.errors import error_response
from api.ops.auth import csrf_token
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import Base
from store.roles import Role
from tests.api.conftest import auth, error_of

PUBLIC = "93.184.216.34"
ENDPOINTS = "/v1/webhook-endpoints"
FAR_FUTURE = "9999-12-31T23:59:59-14:00"
FAR_PAST = "0001-01-01T00:00:00+14:00"

# (method, path) of a route taking a JSON body, with a body it would accept.
BODY_ROUTES = [
    (
        "POST",
        "/v1/schedules",
        {"name": "s1", "type": "data.sandbox.fetch_rates", "cron": "* * * * *"},
    ),
    ("POST", ENDPOINTS, {"url": "https://hooks.example/in"}),
    ("POST", "/v1/webhook-callbacks/secret/rotate", {"grace_s": 1}),
    ("PUT", "/v1/data/secrets/x", {"value": "v"}),
    ("PUT", "/v1/data/sources/x", {"url": "https://api.example/items"}),
    ("POST", "/v1/admin/keys", {"tenant": "t"}),
]


def rows(settings: Settings) -> dict[str, int]:
    """How many rows every table holds."""
    with get_database(settings).session() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


@contextmanager
def writes_nothing(settings: Settings) -> Iterator[None]:
    """Assert that the block leaves every table with as many rows as it found."""
    before = rows(settings)
    yield
    assert rows(settings) == before


def cursor_of(value: Any) -> str:
    """A cursor as a client could forge one: base64 of any JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def admin(settings: Settings) -> IssuedKey:
    """An admin's key: it may call every route below."""
    with get_database(settings).session() as session:
        return create_api_key(session, "platform", "root", Role.ADMIN)


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The client, with DNS answered by a stub: every name is a public address."""
    client.app.state.webhook_resolver = lambda host, port: [PUBLIC]  # type: ignore[attr-defined]
    return client


def endpoint_id(api: TestClient, key: IssuedKey) -> str:
    """A registered webhook endpoint's id."""
    made = api.post(ENDPOINTS, json={"url": "https://hooks.example/in"}, headers=auth(key))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES)
@pytest.mark.parametrize(
    ("content_type", "payload", "status", "code"),
    [
        ("text/plain", None, 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"a=1", 415, "unsupported_media_type"),
        (None, None, 415, "unsupported_media_type"),
        ("application/json", b"[" * 5000 + b"]" * 5000, 400, "malformed_json"),
        ("application/json", b'{"a": "\xff"}', 400, "malformed_json"),
    ],
    ids=["text", "form", "none", "deep", "not-utf8"],
)
def test_every_body_route_answers_415_or_400_for_a_body_that_is_not_json(
    api: TestClient,
    settings: Settings,
    admin: IssuedKey,
    method: str,
    path: str,
    body: dict[str, Any],
    content_type: str | None,
    payload: bytes | None,
    status: int,
    code: str,
) -> None:
    # Given a route that takes a JSON body
    headers = auth(admin)
    if content_type:
        headers["Content-Type"] = content_type
    with writes_nothing(settings):
        # When the body is sent as something else, or is not JSON
        response = api.request(
            method, path, content=payload or json.dumps(body).encode(), headers=headers
        )
        # Then the answer is that of /v1/jobs, and nothing is written
        error_of(response, status, code)


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", ENDPOINTS, {"url": "https://h.example/", "description": "a\x00b"}, "description"),
        ("POST", ENDPOINTS, {"url": "https://h.example/", "event_types": ["\ud800"]}, None),
        ("PUT", "/v1/data/secrets/x", {"value": "a\x00b"}, None),
        ("PUT", "/v1/data/sources/x", {"url": "https://a.example/\x00"}, None),
        ("POST", "/v1/admin/keys", {"tenant": "t\x00x"}, None),
        ("POST", "/v1/admin/keys", {"tenant": "t", "name": "n\ud800"}, None),
    ],
)
def test_a_nul_or_lone_surrogate_in_any_body_is_refused_and_echoed_safely(
    api: TestClient,
    settings: Settings,
    admin: IssuedKey,
    method: str,
    path: str,
    body: dict[str, Any],
    loc: str | None,
) -> None:
    # Given a body with a string no database stores as given
    raw = json.dumps(body).encode()
    with writes_nothing(settings):
        # When it is sent
        response = api.request(
            method, path, content=raw, headers={**auth(admin), "Content-Type": "application/json"}
        )
        # Then 422 naming the place, the same on both databases, and nothing is written
        error = error_of(response, 422, "validation_error")
        assert error["details"][0]["loc"][0] == "body", error


@pytest.mark.parametrize(
    "path",
    [
        "/v1/admin/keys?tenant=t%00x",
        "/v1/data/fx/reference_rates?key=a%00b",
        "/v1/data/fx/reference_rates?key_prefix=a%00b",
        "/v1/data/fx/reference_rates?data.currency=a%00b",
        "/v1/data/fx/a%00b",
        "/v1/schedules/a%00b",
        "/v1/webhook-endpoints/a%00b",
        "/v1/jobs/a%00b",
        "/ops/jobs?tenant=a%00b&type=x%00y&error_class=e%00",
        "/v1/data/fx/reference_rates?a%00b=1",
    ],
)
def test_a_nul_in_any_query_or_path_parameter_is_a_422_never_a_500(
    client: TestClient, admin: IssuedKey, path: str
) -> None:
    # Given a parameter carrying a NUL / When any route is asked with it
    response = client.get(path, headers=auth(admin))
    # Then 422 naming the parameter (404 would do for a path), on both databases
    assert response.status_code in (404, 422), response.text
    if response.status_code == 422:
        error = error_of(response, 422, "validation_error")
        assert error["details"][0]["loc"][0] in ("query", "path"), error


def test_an_error_echoing_a_lone_surrogate_is_rendered_with_it_escaped() -> None:
    # Given an error whose message and details carry a lone surrogate (as an echoed input may)
    # When it is rendered
    rendered = error_response(422, "validation_error", "bad \ud800", {"unknown": ["\ud800"]})
    # Then the answer is JSON with the surrogate as escaped text
    error = json.loads(bytes(rendered.body))["error"]
    assert (error["message"], error["details"]) == ("bad \\ud800", {"unknown": ["\\ud800"]})


def test_a_lone_surrogate_event_type_is_a_422_on_register_and_patch(
    api: TestClient, tenant_key: IssuedKey
) -> None:
    # Given an endpoint
    found = endpoint_id(api, tenant_key)
    raw = b'{"event_types": ["\\ud800"]}'
    headers = {**auth(tenant_key), "Content-Type": "application/json"}
    # When its event types are set to a lone surrogate, at registration or by a change
    made = api.post(
        ENDPOINTS, content=raw[:-1] + b', "url": "https://h.example/"}', headers=headers
    )
    changed = api.patch(f"{ENDPOINTS}/{found}", content=raw, headers=headers)
    # Then both are 422 naming the place
    for response in (made, changed):
        error = error_of(response, 422, "validation_error")
        assert error["details"][0]["loc"][:2] == ["body", "event_types"], error


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("[" * 3000 + "]" * 3000),
        cursor_of([FAR_FUTURE, 1]),
        cursor_of(["2026-01-01T00:00:00+00:00", 2**70]),
        cursor_of(["2026-01-01T00:00:00+00:00", True]),
        cursor_of(["2026-01-01T00:00:00+00:00", -1]),
        cursor_of(["2026-01-01T00:00:00", 1]),
        cursor_of(["2026-01-01T00:00:00+00:00", 1, 2]),
        "x" * 600,
        "!!!",
    ],
)
def test_a_records_cursor_the_api_did_not_issue_is_invalid_cursor(
    client: TestClient, tenant_key: IssuedKey, cursor: str
) -> None:
    # Given a forged records cursor / When the records are listed with it
    response = client.get(
        "/v1/data/fx/reference_rates", params={"cursor": cursor}, headers=auth(tenant_key)
    )
    # Then 422 invalid_cursor, as on /v1/jobs
    error_of(response, 422, "invalid_cursor")


@pytest.mark.parametrize("since", [FAR_FUTURE, FAR_PAST, "0", "5", "2026-13-01T00:00:00Z"])
def test_records_updated_since_outside_the_representable_range_is_a_422(
    client: TestClient, tenant_key: IssuedKey, since: str
) -> None:
    # When records are listed changed since a time that has no UTC value, or is not ISO 8601
    response = client.get(
        "/v1/data/fx/reference_rates", params={"updated_since": since}, headers=auth(tenant_key)
    )
    # Then 422 naming the field
    error = error_of(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["query", "updated_since"], error


@pytest.mark.parametrize(
    "body",
    [
        {"since": FAR_FUTURE},
        {"since": FAR_PAST},
        {"since": "2026-01-01T00:00:00Z", "until": FAR_FUTURE},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": 0},
        {"since": "5"},
        {"since": "2026-01-01T00:00:00Z", "limit": True},
        {"since": "2026-01-01T00:00:00Z", "limit": "10"},
        {"since": "2999-01-01T00:00:00Z"},
    ],
)
def test_an_endpoint_replay_with_a_bad_range_or_lax_types_is_a_422(
    api: TestClient, settings: Settings, tenant_key: IssuedKey, body: dict[str, Any]
) -> None:
    # Given an endpoint
    found = endpoint_id(api, tenant_key)
    with writes_nothing(settings):
        # When its deliveries are replayed over a range that is no range, or with lax types
        response = api.post(f"{ENDPOINTS}/{found}/replay", json=body, headers=auth(tenant_key))
        # Then 422, and nothing is written
        error_of(response, 422, "validation_error")


@pytest.mark.parametrize("grace", [True, "60", None])
def test_rotation_grace_must_be_a_number(
    api: TestClient, tenant_key: IssuedKey, grace: object
) -> None:
    # Given an endpoint / When its secret is rotated with a grace that is not a JSON number
    found = endpoint_id(api, tenant_key)
    body = {"grace_s": grace} if grace is not None else {"grace_s": [1]}
    response = api.post(f"{ENDPOINTS}/{found}/rotate-secret", json=body, headers=auth(tenant_key))
    # Then 422
    error_of(response, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://api.example/items", "page_size": "10"},
        {"url": "https://api.example/items", "page_size": True},
        {"url": "https://api.example/items", "max_pages": True},
        {"url": "https://api.example/items", "conditional": "yes"},
    ],
)
def test_data_source_numbers_and_flags_are_strict(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, body: dict[str, Any]
) -> None:
    with writes_nothing(settings):
        # When a source is configured with a string or boolean where a number belongs
        response = client.put("/v1/data/sources/s", json=body, headers=auth(tenant_key))
        # Then 422, nothing stored
        error_of(response, 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "t", "expires_in_days": "0.5"},
        {"tenant": "t", "expires_in_days": True},
        {"tenant": " demo "},
        {"tenant": "demo\t"},
        {"tenant": "de\nmo"},
        {"tenant": "t", "name": "a\x07b"},
    ],
)
def test_admin_key_fields_are_strict_and_names_are_clean(
    client: TestClient, settings: Settings, admin: IssuedKey, body: dict[str, Any]
) -> None:
    with writes_nothing(settings):
        # When a key is issued with a lax lifetime or a tenant name with spaces or control chars
        response = client.post("/v1/admin/keys", json=body, headers=auth(admin))
        # Then 422, and no tenant or key appears
        error_of(response, 422, "validation_error")


@pytest.mark.parametrize("url", ["http://8.8.8.8:0/x", "https://hooks.example:0/in"])
def test_a_webhook_url_on_port_0_is_refused(
    api: TestClient, settings: Settings, tenant_key: IssuedKey, url: str
) -> None:
    with writes_nothing(settings):
        # When an endpoint is registered on port 0
        response = api.post(ENDPOINTS, json={"url": url}, headers=auth(tenant_key))
        # Then 422 url_refused (the same check runs at every delivery)
        assert error_of(response, 422, "url_refused")["details"]["reason"] == "port"


PAN = "4111111111111111"
SK = "sk_live_" + "a1B2c3D4e5F6g7H8i9J0k1L2"


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "loc"),
    [
        (
            "POST",
            ENDPOINTS,
            {"url": "https://h.example/", "description": f"card {PAN}"},
            "card_data_refused",
            ["body", "description"],
        ),
        (
            "POST",
            ENDPOINTS,
            {"url": "https://h.example/", "description": SK},
            "secret_refused",
            ["body", "description"],
        ),
        (
            "PUT",
            "/v1/data/sources/s",
            {"url": f"https://api.example/items?api_key={SK}"},
            "secret_refused",
            ["body", "url"],
        ),
        ("POST", "/v1/admin/keys", {"tenant": PAN}, "card_data_refused", ["body", "tenant"]),
        ("POST", "/v1/admin/keys", {"tenant": "t", "name": SK}, "secret_refused", ["body", "name"]),
    ],
)
def test_card_data_and_keys_in_stored_text_are_refused_on_every_route(
    api: TestClient,
    settings: Settings,
    admin: IssuedKey,
    method: str,
    path: str,
    body: dict[str, Any],
    code: str,
    loc: list[str],
) -> None:
    with writes_nothing(settings):
        # When a stored free-text field carries a card number or an API key
        response = api.request(method, path, json=body, headers=auth(admin))
        # Then the same refusal as a job payload, naming the place, never the value; nothing written
        error = error_of(response, 422, code)
        assert error["details"]["loc"] == loc, error
        assert PAN not in response.text and SK not in response.text


def test_an_endpoint_patch_screens_its_description(
    api: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an endpoint / When its description is changed to a card number
    found = endpoint_id(api, tenant_key)
    response = api.patch(
        f"{ENDPOINTS}/{found}", json={"description": PAN}, headers=auth(tenant_key)
    )
    # Then it is refused and the endpoint keeps its description
    error_of(response, 422, "card_data_refused")
    shown = api.get(f"{ENDPOINTS}/{found}", headers=auth(tenant_key)).json()
    assert shown["description"] == ""


def test_a_nul_in_an_ops_console_form_is_a_422_never_a_500(
    client: TestClient, settings: Settings, admin: IssuedKey
) -> None:
    # Given an operator on the console, with the form's CSRF token
    token = base64.b64encode(f"oncall:{admin.secret}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    with writes_nothing(settings):
        # When the replay form is posted with a NUL in a filter
        response = client.post(
            "/ops/replay",
            data={"state": "dead", "type": "a\x00b", "csrf": csrf_token(admin.secret)},
            headers=headers,
        )
        # Then 422 naming the form field, and nothing is written
        error = error_of(response, 422, "validation_error")
        assert error["details"][0]["loc"] == ["form", "type"], error


def test_a_job_callback_url_carrying_an_api_key_is_refused(
    api: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    with writes_nothing(settings):
        # When a job names a callback URL with a live key in its query
        response = api.post(
            "/v1/jobs",
            json={
                "type": "data.sandbox.fetch_rates",
                "payload": {"base": "EUR"},
                "callback_url": f"https://hooks.example/in?api_key={SK}",
            },
            headers=auth(tenant_key),
        )
        # Then the same refusal as a payload's, naming the field; no job is written
        error = error_of(response, 422, "secret_refused")
        assert error["details"]["loc"] == ["body", "callback_url"], error
