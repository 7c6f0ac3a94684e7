"""`/v1/data`: records with filters and keyset pages, sync state, sources and write-only
secrets, each tenant seeing only its own (404/empty, never another tenant's rows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from store.keys import IssuedKey
from tasks.executor import Execution, execute
from tests.api.conftest import auth, error_of
from tests.data.conftest import set_feed
from tests.tasks.factories import load, make_job

TOKEN = "dt_sandbox_feed_token"


@pytest.fixture
def api(data_settings: Settings) -> Iterator[TestClient]:
    """The API on the data test's settings."""
    with TestClient(create_app(data_settings)) as client:
        yield client


def source(sandbox_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": f"{sandbox_url}/data/items",
        "records_path": "data",
        "next_cursor_path": "meta.next_cursor",
        "auth_header": "Authorization",
        "auth_prefix": "Bearer ",
        "secret": "feed-token",
        **extra,
    }


def synced(api: TestClient, s: Settings, key: IssuedKey, items: int = 120) -> None:
    """The tenant's secret and source configured over the API, and one pull run."""
    set_feed(s.sandbox_url, items=items)
    assert (
        api.put("/v1/data/secrets/feed-token", json={"value": TOKEN}, headers=auth(key)).status_code
        == 201
    )
    assert (
        api.put("/v1/data/sources/items", json=source(s.sandbox_url), headers=auth(key)).status_code
        == 201
    )
    job_id = make_job(s, key.tenant_id, "data.http.pull", {"source": "items"})
    assert execute(job_id, s) is Execution.SUCCEEDED


def test_records_page_by_keyset_and_filter_by_key_and_prefix(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given 120 stored records
    synced(api, data_settings, tenant_key)
    # When they are listed 50 at a time
    keys: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/data/http/items", params=params, headers=auth(tenant_key)).json()
        keys += [item["key"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every record came once, and the filters narrow as asked
    assert sorted(keys) == [f"item-{i:07d}" for i in range(120)]
    exact = api.get("/v1/data/http/items", params={"key": "item-0000007"}, headers=auth(tenant_key))
    assert [i["data"]["name"] for i in exact.json()["items"]] == ["Item 7"]
    prefix = api.get(
        "/v1/data/http/items", params={"key_prefix": "item-000010"}, headers=auth(tenant_key)
    )
    assert len(prefix.json()["items"]) == 10
    by_field = api.get(
        "/v1/data/http/items", params={"data.name": "Item 42"}, headers=auth(tenant_key)
    )
    assert [i["key"] for i in by_field.json()["items"]] == ["item-0000042"]
    bad_field = api.get("/v1/data/http/items", params={"data.na me": "x"}, headers=auth(tenant_key))
    error_of(bad_field, 422, "invalid_filter")
    later = api.get(
        "/v1/data/http/items",
        params={"updated_since": "2999-01-01T00:00:00Z"},
        headers=auth(tenant_key),
    )
    assert later.json()["items"] == []


def test_syncs_show_cursor_counts_and_last_success(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given one completed pull / When the syncs are read
    synced(api, data_settings, tenant_key)
    rows = api.get("/v1/data/syncs", headers=auth(tenant_key)).json()
    # Then the pull's pass is complete with its pages and counts
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["resource"], row["complete"], row["cursor"]) == (
        "http",
        "items",
        True,
        None,
    )
    assert (row["pages"], row["fetched"], row["inserted"], row["updated"]) == (2, 120, 120, 0)
    assert row["last_success_at"] is not None and row["last_error"] is None


def test_another_tenant_sees_none_of_it(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    # Given a tenant with records, a sync, a source and a secret
    synced(api, data_settings, tenant_key)
    other = auth(other_tenant_key)
    # When another tenant looks / Then it finds nothing of the first tenant's
    assert api.get("/v1/data/http/items", headers=other).json()["items"] == []
    assert api.get("/v1/data/syncs", headers=other).json() == []
    assert api.get("/v1/data/sources", headers=other).json() == []
    assert api.get("/v1/data/secrets", headers=other).json() == []
    # nor through the first tenant's keyset cursor
    page = api.get("/v1/data/http/items", params={"limit": 50}, headers=auth(tenant_key)).json()
    assert len(page["items"]) == 50 and page["next_cursor"]
    after = api.get("/v1/data/http/items", params={"cursor": page["next_cursor"]}, headers=other)
    assert after.status_code == 200 and after.json()["items"] == []
    # and its source cannot name the first tenant's secret
    borrowed = api.put(
        "/v1/data/sources/items", json=source(data_settings.sandbox_url), headers=other
    )
    error_of(borrowed, 422, "unknown_secret")
    # and a pull naming the first tenant's source fails as unknown for the second
    job_id = make_job(
        data_settings, other_tenant_key.tenant_id, "data.http.pull", {"source": "items"}
    )
    assert execute(job_id, data_settings) is Execution.FAILED
    assert (load(data_settings, job_id).error or {}).get("code") == "unknown_source"
    # while the first tenant's records stay as its own pull left them
    last = api.get("/v1/data/http/items", params={"key": "item-0000119"}, headers=auth(tenant_key))
    assert [r["job_id"] for r in last.json()["items"]] == [page["items"][0]["job_id"]]


def test_a_secret_is_never_answered(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a stored secret
    value = "s3cr3t-value-never-shown"
    created = api.put(
        "/v1/data/secrets/feed-token", json={"value": value}, headers=auth(tenant_key)
    )
    replaced = api.put(
        "/v1/data/secrets/feed-token", json={"value": value}, headers=auth(tenant_key)
    )
    listed = api.get("/v1/data/secrets", headers=auth(tenant_key))
    # Then neither the write, the rewrite nor the listing carries the value
    assert (created.status_code, replaced.status_code) == (201, 200)
    for response in (created, replaced, listed):
        assert value not in response.text
    assert [s["name"] for s in listed.json()] == ["feed-token"]


REFUSED = {
    "http://127.0.0.1:8080/items": "loopback",
    "http://169.254.169.254/latest/meta-data": "link_local",
    "http://10.0.0.5/items": "private",
    "ftp://example.com/items": "scheme",
}


def test_a_source_url_on_a_refused_address_is_422_outside_development(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given production settings (no loopback)
    s = data_settings.model_copy(update={"outbound_allow_loopback": False})
    with TestClient(create_app(s)) as api:
        for url, reason in REFUSED.items():
            # When a source names a refused address
            response = api.put("/v1/data/sources/bad", json={"url": url}, headers=auth(tenant_key))
            # Then it is refused with the one error shape naming the rule, and nothing is stored
            error = error_of(response, 422, "outbound_refused")
            assert reason in error["message"] or reason == "scheme", error
        assert api.get("/v1/data/sources", headers=auth(tenant_key)).json() == []


def test_bad_source_configs_are_422_naming_the_problem(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given configs that are wrong in different ways / When they are put
    url = f"{data_settings.sandbox_url}/data/items"
    unknown_secret = api.put(
        "/v1/data/sources/x",
        json={"url": url, "auth_header": "X-Key", "secret": "nope"},
        headers=auth(tenant_key),
    )
    both_paging = api.put(
        "/v1/data/sources/x",
        json={"url": url, "next_cursor_path": "a", "next_link": "header"},
        headers=auth(tenant_key),
    )
    bad_name = api.put("/v1/data/sources/Bad Name", json={"url": url}, headers=auth(tenant_key))
    # Then each is a 422 in the one shape
    error_of(unknown_secret, 422, "unknown_secret")
    error_of(both_paging, 422, "validation_error")
    error_of(bad_name, 422, "validation_error")


def test_unknown_provider_and_bad_cursor_are_4xx(api: TestClient, tenant_key: IssuedKey) -> None:
    # When a provider nobody registered, or a forged cursor, is asked for
    # Then 404 and 422 in the one error shape
    error_of(api.get("/v1/data/nope/items", headers=auth(tenant_key)), 404, "not_found")
    error_of(
        api.get("/v1/data/http/items", params={"cursor": "xyz"}, headers=auth(tenant_key)),
        422,
        "invalid_cursor",
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/data/secrets/4242424242424242", {"value": "abc"}),
        ("/v1/data/sources/4111111111111111", None),
    ],
)
def test_a_card_number_as_a_secret_or_source_name_is_refused_and_nothing_is_written(
    api: TestClient,
    data_settings: Settings,
    tenant_key: IssuedKey,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    # Given a secret or source named by a card number
    payload = body if body is not None else {"url": f"{data_settings.sandbox_url}/data/items"}
    # When it is put
    response = api.put(path, json=payload, headers=auth(tenant_key))
    # Then 422 card_data_refused names the path parameter, never the number, and nothing is stored
    error = error_of(response, 422, "card_data_refused")
    assert "4242424242424242" not in response.text and "4111111111111111" not in response.text
    assert error["details"]["loc"] == ["path", "name"]
    assert api.get("/v1/data/secrets", headers=auth(tenant_key)).json() == []
    assert api.get("/v1/data/sources", headers=auth(tenant_key)).json() == []


def test_a_secret_value_stays_unscreened_a_credential_may_look_like_anything(
    api: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a credential whose digits pass the Luhn check
    # When it is stored as a secret's value
    response = api.put(
        "/v1/data/secrets/tok", json={"value": "4242424242424242"}, headers=auth(tenant_key)
    )
    # Then it is stored (sealed, never answered)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("auth_prefix", {"auth_prefix": "Bearer\u00e9\u2028"}),
        ("auth_prefix", {"auth_prefix": "Bearer\r\nX-Evil: 1"}),
        ("auth_prefix", {"auth_prefix": "Bearer \u20ac"}),
        ("auth_prefix", {"auth_prefix": "Bearer\x7f"}),
    ],
)
def test_an_auth_prefix_that_is_not_header_text_is_422_naming_it(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey, field: str, extra: Any
) -> None:
    # Given a stored secret
    api.put("/v1/data/secrets/crm-token", json={"value": "t"}, headers=auth(tenant_key))
    # When a source's auth prefix cannot be sent in an HTTP header
    response = api.put(
        "/v1/data/sources/s12",
        json=source(data_settings.sandbox_url, secret="crm-token") | extra,
        headers=auth(tenant_key),
    )
    # Then 422 names the field and no source is stored
    error = error_of(response, 422, "validation_error")
    assert any(e["loc"] == ["body", field] for e in error["details"]), error
    assert api.get("/v1/data/sources", headers=auth(tenant_key)).json() == []


@pytest.mark.parametrize(
    "value", ["tok\r\nX-Evil: 1", "tok\n", "tok\u2028", "t\u00e9\u20ac", "tok\x01"]
)
def test_a_secret_value_that_is_not_header_text_is_422(
    api: TestClient, tenant_key: IssuedKey, value: str
) -> None:
    # When a secret's value could not be sent as an HTTP header value
    response = api.put("/v1/data/secrets/bad", json={"value": value}, headers=auth(tenant_key))
    # Then 422 names the value, never echoes it, and nothing is stored
    error = error_of(response, 422, "validation_error")
    assert any(e["loc"] == ["body", "value"] for e in error["details"]), error
    assert "X-Evil" not in response.text
    assert api.get("/v1/data/secrets", headers=auth(tenant_key)).json() == []


def test_a_latin1_secret_and_prefix_are_accepted(
    api: TestClient, data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given header text in visible ASCII and Latin-1, with inner spaces and tabs
    secret = api.put(
        "/v1/data/secrets/crm-token", json={"value": "t\u00e9k en"}, headers=auth(tenant_key)
    )
    source_put = api.put(
        "/v1/data/sources/s12",
        json=source(data_settings.sandbox_url, secret="crm-token", auth_prefix="Token\t"),
        headers=auth(tenant_key),
    )
    # Then both are stored
    assert (secret.status_code, source_put.status_code) == (201, 201), source_put.text
