"""`data.fx.sync_rates` through the executor against the sandbox's ECB-shaped files, on SQLite
and PostgreSQL: stored once, conditional requests, malformed files, 503 then success."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from config.settings import Settings
from store.data_models import DataRecord, DataSync
from store.db import get_database
from store.keys import IssuedKey
from tasks.executor import Execution, execute
from tests.data.conftest import feed_stats, set_feed
from tests.tasks.factories import load, make_due, make_job

SYNC = "data.fx.sync_rates"
CURRENCIES = 9  # the sandbox's table: ten currencies, EUR is the base
DAYS_90 = 64


def records(settings: Settings, resource: str = "reference_rates") -> dict[str, dict[str, Any]]:
    with get_database(settings).session() as session:
        rows = session.scalars(select(DataRecord).where(DataRecord.resource == resource))
        return {row.natural_key: row.data for row in rows}


def sync_row(settings: Settings, resource: str = "reference_rates") -> DataSync:
    with get_database(settings).session() as session:
        row = session.scalars(select(DataSync).where(DataSync.resource == resource)).one()
        return row


def run(settings: Settings, key: IssuedKey, payload: dict[str, Any]) -> tuple[Execution, Any]:
    job_id = make_job(settings, key.tenant_id, SYNC, payload)
    return execute(job_id, settings), load(settings, job_id)


def test_a_90_day_sync_stores_each_day_and_currency_once_and_a_rerun_is_not_modified(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the sandbox's 90-day file (64 business days x 9 currencies)
    s = data_settings
    # When the sync runs twice
    first, job1 = run(s, tenant_key, {"window": "90d"})
    second, job2 = run(s, tenant_key, {"window": "90d"})
    # Then the first stored every (date, currency) once, the second was a 304 changing nothing
    assert first is Execution.SUCCEEDED and second is Execution.SUCCEEDED
    assert job1.result["inserted"] == DAYS_90 * CURRENCIES and job1.result["complete"]
    assert job2.result["not_modified"] is True
    assert (job2.result["inserted"], job2.result["updated"]) == (0, 0)
    stored = records(s)
    assert len(stored) == DAYS_90 * CURRENCIES
    assert stored["2026-11-27|USD"]["base"] == "EUR"
    assert Decimal(stored["2026-11-27|USD"]["rate"]) > 1
    assert feed_stats(s.sandbox_url)["requests"]["ecb:304"] == 1


def test_etag_change_updates_only_what_changed(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a stored daily file
    s = data_settings
    run(s, tenant_key, {"window": "daily"})
    etag_before = sync_row(s).etag
    # When the provider republishes (a new ETag, some rates revised) and the sync runs again
    set_feed(s.sandbox_url, ecb_revision=1)
    outcome, job = run(s, tenant_key, {"window": "daily"})
    # Then the 200 was read, the changed rates updated, the rest left as they were
    assert outcome is Execution.SUCCEEDED and job.result["not_modified"] is False
    assert job.result["inserted"] == 0
    assert job.result["updated"] + job.result["unchanged"] == CURRENCIES
    assert job.result["updated"] >= 1
    assert sync_row(s).etag not in (None, etag_before)


def test_last_modified_alone_gets_a_304(data_settings: Settings, tenant_key: IssuedKey) -> None:
    # Given a stored daily file whose sync kept only Last-Modified (a provider without ETags)
    s = data_settings
    run(s, tenant_key, {"window": "daily"})
    with get_database(s).session() as session:
        session.execute(update(DataSync).values(etag=None))
    # When the sync runs again
    outcome, job = run(s, tenant_key, {"window": "daily"})
    # Then If-Modified-Since got a 304: success with no change
    assert outcome is Execution.SUCCEEDED and job.result["not_modified"] is True
    assert feed_stats(s.sandbox_url)["requests"]["ecb:304"] == 1


def test_a_non_eur_base_stores_cross_rates_under_its_own_resource(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the daily file / When synced in USD
    s = data_settings
    run(s, tenant_key, {"window": "daily"})
    outcome, _ = run(s, tenant_key, {"window": "daily", "base": "USD"})
    # Then each USD rate is the EUR rate over EUR→USD, rounded to 6 places, EUR included
    assert outcome is Execution.SUCCEEDED
    eur = records(s)
    usd = records(s, "reference_rates.USD")
    day = "2026-11-27"
    eur_usd = Decimal(eur[f"{day}|USD"]["rate"])
    expected = (Decimal(eur[f"{day}|JPY"]["rate"]) / eur_usd).quantize(Decimal("0.000001"))
    assert Decimal(usd[f"{day}|JPY"]["rate"]) == expected
    assert Decimal(usd[f"{day}|EUR"]["rate"]) == (1 / eur_usd).quantize(Decimal("0.000001"))
    assert f"{day}|USD" not in usd
    # and, from the sandbox's fixed daily file (USD 1.0883, JPY 162.72 per EUR), exactly:
    # 162.72 / 1.0883 = 149.51759625… and 1 / 1.0883 = 0.91886428…, rounded half-even
    assert (eur[f"{day}|USD"]["rate"], eur[f"{day}|JPY"]["rate"]) == ("1.0883", "162.72")
    assert (usd[f"{day}|JPY"]["rate"], usd[f"{day}|EUR"]["rate"]) == ("149.517596", "0.918864")


def test_a_weekend_day_stores_the_friday_before(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the 90-day file / When Sunday 2026-11-22 is asked for
    s = data_settings
    outcome, _ = run(s, tenant_key, {"window": "90d", "day": "2026-11-22"})
    # Then Friday 2026-11-20's rates are stored, and nothing else
    assert outcome is Execution.SUCCEEDED
    assert {key.split("|")[0] for key in records(s)} == {"2026-11-20"}


def test_malformed_xml_fails_permanently_with_an_excerpt_in_the_attempt(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a provider answering a truncated file
    s = data_settings
    set_feed(s.sandbox_url, faults=[{"malformed": True}])
    # When the sync runs
    outcome, job = run(s, tenant_key, {"window": "daily"})
    # Then it failed for good, saying what was wrong and showing how the answer began
    assert outcome is Execution.FAILED
    attempt = job.attempt_rows[-1]
    assert attempt.error_class == "permanent"
    assert attempt.error_message is not None
    assert "not well-formed XML" in attempt.error_message
    assert "gesmes:Envelope" in attempt.error_message
    assert attempt.response_excerpt is not None and attempt.http_status == 200
    # and the sync notes the error without having stored anything
    assert records(s) == {}
    assert "not well-formed" in (sync_row(s).last_error or "")


def test_a_503_is_retried_and_the_retry_stores_the_file(
    data_settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a provider that answers 503 once
    s = data_settings
    set_feed(s.sandbox_url, faults=[{"status": 503}])
    job_id = make_job(s, tenant_key.tenant_id, SYNC, {"window": "daily"})
    # When the sync runs, and again once its backoff is due
    first = execute(job_id, s)
    make_due(s, job_id)
    second = execute(job_id, s)
    # Then the first attempt was transient, the second stored the day
    assert (first, second) == (Execution.RETRYING, Execution.SUCCEEDED)
    assert load(s, job_id).attempt_rows[0].error_class == "transient"
    assert len(records(s)) == CURRENCIES
    with get_database(s).session() as session:
        assert session.scalar(select(func.count()).select_from(DataRecord)) == CURRENCIES
    assert sync_row(s).last_error is None
