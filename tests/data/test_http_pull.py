"""`data.http.pull` through the executor against the sandbox's paginated JSON, on SQLite and
PostgreSQL: cursor and next-link paging, stored once, changes counted, failures, secrets."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from config.settings import Settings
from integrations.guard import get_guard
from store.data_models import DataRecord, DataSync
from store.db import get_database
from store.keys import IssuedKey
from store.models import Base
from store.secrets import put_secret
from store.sources import put_source
from tasks.executor import Execution, execute
from tests.data.conftest import feed_stats, set_feed
from tests.tasks.factories import load, make_due, make_job

PULL = "data.http.pull"
TOKEN = "dt_sandbox_feed_token"
CURSOR_SOURCE = {
    "records_path": "$.data",
    "key_path": "id",
    "next_cursor_path": "meta.next_cursor",
    "page_size": 100,
    "auth_header": "Authorization",
    "auth_prefix": "Bearer ",
    "secret": "feed-token",
}
LINK_SOURCE = {
    "records_path": "items",
    "key_path": "id",
    "next_link": "header",
    "page_size_param": "per_page",
    "page_size": 100,
    "auth_header": "Authorization",
    "auth_prefix": "Bearer ",
    "secret": "feed-token",
}


def configure(
    s: Settings, tenant_id: uuid.UUID, name: str, config: dict[str, Any], token: str = TOKEN
) -> None:
    """Store the feed token as the tenant's secret and the source using it."""
    with get_database(s).session() as session:
        put_secret(session, s, tenant_id, "feed-token", token)
        put_source(session, tenant_id, name, config)


def cursor_feed(
    s: Settings, tenant_id: uuid.UUID, token: str = TOKEN, name: str = "items", **extra: Any
) -> None:
    """Configure `name` as the sandbox's cursor-paged feed; `extra` overrides its config."""
    configure(
        s, tenant_id, name, {"url": f"{s.sandbox_url}/data/items", **CURSOR_SOURCE, **extra}, token
    )


def linked_feed(s: Settings, tenant_id: uuid.UUID, **extra: Any) -> None:
    """Configure "linked" as the sandbox's feed paged by a Link header; `extra` as above."""
    url = f"{s.sandbox_url}/data/items-linked"
    configure(s, tenant_id, "linked", {"url": url, **LINK_SOURCE, **extra})


def pull(s: Settings, tenant_id: uuid.UUID, name: str) -> tuple[Execution, Any]:
    job_id = make_job(s, tenant_id, PULL, {"source": name})
    return execute(job_id, s), load(s, job_id)


def stored(s: Settings, resource: str) -> dict[str, DataRecord]:
    with get_database(s).session() as session:
        rows = session.scalars(select(DataRecord).where(DataRecord.resource == resource))
        return {row.natural_key: row for row in rows}


def sync_of(s: Settings, resource: str) -> DataSync:
    with get_database(s).session() as session:
        return session.scalars(select(DataSync).where(DataSync.resource == resource)).one()


def test_three_pages_by_cursor_are_stored_once_and_a_rerun_changes_nothing(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given 250 records served 100 a page by cursor
    s = data_settings
    set_feed(s.sandbox_url, items=250)
    cursor_feed(s, tenant_key.tenant_id)
    # When the pull runs, then runs again
    first, job1 = pull(s, tenant_key.tenant_id, "items")
    second, job2 = pull(s, tenant_key.tenant_id, "items")
    # Then 3 pages stored all 250 once; the re-run inserted and updated nothing
    assert (first, second) == (Execution.SUCCEEDED, Execution.SUCCEEDED)
    assert job1.result | {"cursor": None} == job1.result
    assert (job1.result["pages"], job1.result["inserted"], job1.result["complete"]) == (
        3,
        250,
        True,
    )
    assert (job2.result["inserted"], job2.result["updated"], job2.result["unchanged"]) == (
        0,
        0,
        250,
    )
    rows = stored(s, "items")
    assert len(rows) == 250 and set(rows) == {f"item-{i:07d}" for i in range(250)}
    assert {row.job_id for row in rows.values()} == {job2.id}
    assert all(row.first_seen_at < row.last_seen_at for row in rows.values())
    state = sync_of(s, "items")
    assert (state.cursor, state.pages, state.unchanged) == (None, 3, 250)


def test_a_changed_record_is_updated_once(data_settings: Settings, tenant_key: IssuedKey) -> None:
    # Given a stored resource
    s = data_settings
    set_feed(s.sandbox_url, items=250)
    cursor_feed(s, tenant_key.tenant_id)
    pull(s, tenant_key.tenant_id, "items")
    before = stored(s, "items")["item-0000042"]
    # When one record changes at the provider and the pull runs again
    set_feed(s.sandbox_url, revisions={"item-0000042": 1})
    _, job = pull(s, tenant_key.tenant_id, "items")
    # Then exactly that record was updated, with a new hash and change time
    assert (job.result["inserted"], job.result["updated"], job.result["unchanged"]) == (0, 1, 249)
    after = stored(s, "items")["item-0000042"]
    assert after.data["revision"] == 1 and after.content_hash != before.content_hash
    assert after.changed_at > before.changed_at and after.first_seen_at == before.first_seen_at


def test_a_conditional_source_unchanged_since_its_last_pass_is_a_304_that_changes_nothing(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a conditional source of 250 records, pulled once in full
    s = data_settings
    set_feed(s.sandbox_url, items=250)
    cursor_feed(s, tenant_key.tenant_id, conditional=True)
    _, first = pull(s, tenant_key.tenant_id, "items")
    etag = sync_of(s, "items").etag
    # When it runs again with nothing changed at the source
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    # Then the first page's If-None-Match got a 304: a success, one request, nothing written
    assert first.result["pages"] == 3 and etag is not None
    assert outcome is Execution.SUCCEEDED
    assert job.result["not_modified"] is True and job.result["complete"] is True
    assert (job.result["pages"], job.result["inserted"], job.result["updated"]) == (1, 0, 0)
    requests_seen = feed_stats(s.sandbox_url)["requests"]
    assert (requests_seen["items"], requests_seen["items:304"]) == (4, 1)
    assert {row.job_id for row in stored(s, "items").values()} == {first.id}
    state = sync_of(s, "items")
    assert (state.etag, state.cursor, state.last_error) == (etag, None, None)


def test_a_conditional_source_that_changed_is_pulled_again_and_updates_what_changed(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a conditional source pulled once in full
    s = data_settings
    set_feed(s.sandbox_url, items=250)
    cursor_feed(s, tenant_key.tenant_id, conditional=True)
    pull(s, tenant_key.tenant_id, "items")
    etag = sync_of(s, "items").etag
    # When one record changes (the collection's ETag with it) and the pull runs again
    set_feed(s.sandbox_url, revisions={"item-0000200": 1})
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    # Then the 200 started a full pass: 3 pages, the one record updated, the new ETag kept
    assert outcome is Execution.SUCCEEDED and job.result["not_modified"] is False
    assert (job.result["pages"], job.result["updated"], job.result["unchanged"]) == (3, 1, 249)
    assert feed_stats(s.sandbox_url)["requests"].get("items:304", 0) == 0
    assert sync_of(s, "items").etag not in (None, etag)


def test_a_conditional_source_without_an_etag_is_a_304_by_last_modified(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a conditional source pulled once, whose sync kept only Last-Modified (as from a
    # server that sends no ETag)
    s = data_settings
    set_feed(s.sandbox_url, items=150)
    linked_feed(s, tenant_key.tenant_id, conditional=True)
    pull(s, tenant_key.tenant_id, "linked")
    with get_database(s).session() as session:
        session.execute(update(DataSync).values(etag=None))
    assert sync_of(s, "linked").last_modified is not None
    # When it runs again
    outcome, job = pull(s, tenant_key.tenant_id, "linked")
    # Then If-Modified-Since alone got the 304
    assert outcome is Execution.SUCCEEDED and job.result["not_modified"] is True
    assert feed_stats(s.sandbox_url)["requests"]["items-linked:304"] == 1
    # and once the source changes, the same validator no longer matches
    set_feed(s.sandbox_url, items=160)
    _, changed = pull(s, tenant_key.tenant_id, "linked")
    assert (changed.result["not_modified"], changed.result["inserted"]) == (False, 10)


def test_a_source_not_marked_conditional_sends_no_validators(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a source without `conditional`, pulled once
    s = data_settings
    set_feed(s.sandbox_url, items=150)
    cursor_feed(s, tenant_key.tenant_id)
    pull(s, tenant_key.tenant_id, "items")
    # When it runs again / Then every page is fetched in full, none answered 304
    _, job = pull(s, tenant_key.tenant_id, "items")
    assert (job.result["pages"], job.result["unchanged"]) == (2, 150)
    assert feed_stats(s.sandbox_url)["requests"].get("items:304", 0) == 0
    assert sync_of(s, "items").etag is None


def test_next_link_paging_follows_the_link_header(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given 230 records paged by an RFC 8288 Link header
    s = data_settings
    set_feed(s.sandbox_url, items=230)
    linked_feed(s, tenant_key.tenant_id)
    # When the pull runs
    outcome, job = pull(s, tenant_key.tenant_id, "linked")
    # Then it followed the links through 3 pages and stored all 230
    assert outcome is Execution.SUCCEEDED
    assert (job.result["pages"], job.result["inserted"]) == (3, 230)
    assert len(stored(s, "linked")) == 230
    assert feed_stats(s.sandbox_url)["requests"]["items-linked"] == 3


def test_a_failed_page_keeps_the_committed_ones_and_the_retry_resumes_at_the_cursor(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given 500 records, the third page answered 503 once
    s = data_settings
    set_feed(s.sandbox_url, items=500, faults=[{}, {}, {"status": 503}])
    cursor_feed(s, tenant_key.tenant_id)
    job_id = make_job(s, tenant_key.tenant_id, PULL, {"source": "items"})
    # When the pull runs, fails on page 3, and runs again when due
    first = execute(job_id, s)
    mid = sync_of(s, "items")
    make_due(s, job_id)
    second = execute(job_id, s)
    # Then the two committed pages stayed, the cursor pointed at page 3, and the retry fetched
    # pages 3-5 only: 5 requests for the 5 pages (+1 failed), every record stored once
    assert (first, second) == (Execution.RETRYING, Execution.SUCCEEDED)
    assert (mid.pages, mid.inserted, mid.cursor is not None) == (2, 200, True)
    assert mid.last_error is not None and "503" in mid.last_error
    assert feed_stats(s.sandbox_url)["requests"]["items"] == 6
    result = load(s, job_id).result
    assert result is not None and result["pages"] == 3
    done = sync_of(s, "items")
    assert (done.pages, done.inserted, done.fetched, done.cursor) == (5, 500, 500, None)
    assert len(stored(s, "items")) == 500


def test_malformed_json_fails_permanently_with_an_excerpt(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a page that is cut off mid-document
    s = data_settings
    set_feed(s.sandbox_url, faults=[{"malformed": True}])
    cursor_feed(s, tenant_key.tenant_id)
    # When the pull runs
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    # Then it failed for good, naming the fault and quoting the start of the answer
    assert outcome is Execution.FAILED
    message = job.attempt_rows[-1].error_message
    assert job.attempt_rows[-1].error_class == "permanent"
    assert "the body is not JSON" in message and '{"data": [{"id": "item-0000001"' in message
    assert job.attempt_rows[-1].http_status == 200
    assert '"item-0000001"' in (job.attempt_rows[-1].response_excerpt or "")
    assert sync_of(s, "items").pages == 0 and stored(s, "items") == {}


def test_a_record_without_its_key_fails_naming_the_record(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a source whose key path the records do not have
    s = data_settings
    cursor_feed(s, tenant_key.tenant_id, key_path="sku")
    # When it runs / Then it fails permanently and says which record lacked what
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    assert outcome is Execution.FAILED
    assert "record 0 has no key" in job.attempt_rows[-1].error_message


def test_the_auth_header_comes_from_the_secret_which_no_table_or_log_line_holds(
    data_settings: Settings,
    tenant_key: IssuedKey,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a feed that accepts only a fresh token, stored as the tenant's secret
    s = data_settings
    token = f"tok_{uuid.uuid4().hex}"
    set_feed(s.sandbox_url, items=150, token=token)
    caplog.set_level(logging.DEBUG)
    cursor_feed(s, tenant_key.tenant_id, token)
    # When the pull runs
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    # Then the provider accepted the header built from it
    assert outcome is Execution.SUCCEEDED and job.result["inserted"] == 150
    assert feed_stats(s.sandbox_url)["requests"].get("auth_failed", 0) == 0
    # and the token is in no row of any table, nor in any log line
    assert token not in dump_all_tables(s)
    assert token not in caplog.text
    out, err = capfd.readouterr()
    assert token not in out + err


def test_a_wrong_secret_is_refused_by_the_provider_and_fails_permanently(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a secret that is not the feed's token
    s = data_settings
    cursor_feed(s, tenant_key.tenant_id, "wrong")
    # When the pull runs / Then the 401 is permanent
    outcome, job = pull(s, tenant_key.tenant_id, "items")
    assert outcome is Execution.FAILED and job.attempt_rows[-1].http_status == 401


def test_loopback_and_metadata_addresses_are_refused_outside_development(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given sources on loopback and on the cloud metadata address, in production settings
    s = data_settings.model_copy(update={"outbound_allow_loopback": False})
    results = {}
    for name, url in {
        "local": f"{s.sandbox_url}/data/items",
        "meta": "http://169.254.169.254/latest/meta-data",
    }.items():
        configure(s, tenant_key.tenant_id, name, {"url": url, **CURSOR_SOURCE})
        # When each pull runs
        results[name] = pull(s, tenant_key.tenant_id, name)
    # Then both fail permanently before any request is sent
    for outcome, job in results.values():
        assert outcome is Execution.FAILED
        assert job.error["code"] == "outbound_refused"
    assert feed_stats(s.sandbox_url)["requests"].get("items", 0) == 0


def dump_all_tables(s: Settings) -> str:
    """Every row of every table, as text."""
    parts = []
    with get_database(s).engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("config", "token"),
    [
        ({"auth_prefix": "Bearer\u00e9\u2028"}, TOKEN),  # cannot be encoded in a header
        ({}, "tok\r\nX-Evil: 1"),  # would split the header
        ({"auth_header": "Bad Header"}, TOKEN),  # not a token
    ],
)
def test_an_auth_header_stored_before_it_was_refused_fails_once_without_touching_the_breaker(
    data_settings: Settings, tenant_key: IssuedKey, config: dict[str, Any], token: str
) -> None:
    # Given a source whose auth header cannot be sent (stored before the API refused such text)
    s = data_settings
    cursor_feed(s, tenant_key.tenant_id, token, "s12", **config)
    # And the shared `http` breaker one counted failure short of opening
    breaker = get_guard(s).breaker("http")
    for _ in range(breaker.threshold - 1):
        breaker.failure()
    # When the pull runs
    outcome, job = pull(s, tenant_key.tenant_id, "s12")
    # Then it fails for good on its first attempt with a clear code, never quoting the secret
    assert outcome is Execution.FAILED
    assert len(job.attempt_rows) == 1 and job.attempt_rows[-1].error_class == "permanent"
    assert (job.error or {}).get("code") == "invalid_auth_header", job.error
    assert "X-Evil" not in (job.attempt_rows[-1].error_message or "")
    # And the breaker neither counted it nor forgot the failures it had: other tenants go on
    check = breaker.check()
    assert check.wait_s is None and check.failures == breaker.threshold - 1
