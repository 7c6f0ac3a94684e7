"""`conveyor schedules …` against real SQLite and PostgreSQL: the API's rules from a shell."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from config.settings import Settings, get_settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job, Schedule
from workers.cli import app

RATES = "data.sandbox.fetch_rates"


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose `conveyor` reads this test's database and Redis prefix."""
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONVEYOR_BROKER_KEY_PREFIX", settings.broker_key_prefix)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def tenant_name(settings: Settings, key: IssuedKey) -> str:
    from store.models import Tenant

    with get_database(settings).session() as session:
        tenant = session.get(Tenant, key.tenant_id)
        assert tenant is not None
        return tenant.name


def count(settings: Settings, model: type) -> int:
    with get_database(settings).session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_create_show_pause_trigger_delete_from_the_shell(
    cli: CliRunner, settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    tenant = tenant_name(settings, tenant_key)
    # Given a schedule created from the shell
    created = cli.invoke(
        app,
        [
            "schedules",
            "create",
            "--tenant",
            tenant,
            "--name",
            "rates",
            "--type",
            RATES,
            "--payload",
            '{"base": "EUR"}',
            "--cron",
            "30 2 * * *",
            "--timezone",
            "Europe/Berlin",
        ],
    )
    assert created.exit_code == 0, created.output
    shown = json.loads(created.output)
    assert len(shown["next_fire_times"]) == 5 and shown["enabled"] is True
    # When it is paused, listed, triggered
    assert cli.invoke(app, ["schedules", "pause", "rates", "--tenant", tenant]).exit_code == 0
    listed = cli.invoke(app, ["schedules", "list", "--tenant", tenant])
    triggered = cli.invoke(app, ["schedules", "trigger", "rates", "--tenant", tenant])
    # Then the list says paused, and the trigger made a job for the tenant
    assert "rates" in listed.output and "paused" in listed.output
    assert triggered.exit_code == 0, triggered.output
    with get_database(settings).session() as session:
        job = session.get(Job, uuid.UUID(triggered.output.strip()))
        assert job is not None and job.tenant_id == tenant_key.tenant_id
    # And another tenant cannot see it
    other = tenant_name(settings, other_tenant_key)
    foreign = cli.invoke(app, ["schedules", "show", "rates", "--tenant", other])
    assert foreign.exit_code == 1 and "no schedule" in foreign.output
    # And deleting it removes it
    assert cli.invoke(app, ["schedules", "delete", "rates", "--tenant", tenant]).exit_code == 0
    assert count(settings, Schedule) == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--cron", "99 * * * *"], "cron"),
        (["--cron", "0 * * * *", "--timezone", "Mars/Olympus"], "timezone"),
        (["--interval-s", "0.1"], "interval_s"),
        (["--cron", "0 * * * *", "--payload", '{"base": 5}'], "payload"),
        (["--cron", "0 * * * *", "--misfire", "later"], "misfire"),
    ],
)
def test_invalid_schedule_from_the_shell_names_the_field_and_writes_nothing(
    cli: CliRunner, settings: Settings, tenant_key: IssuedKey, args: list[str], field: str
) -> None:
    # Given a create with one thing wrong
    tenant = tenant_name(settings, tenant_key)
    base = ["schedules", "create", "--tenant", tenant, "--name", "x", "--type", RATES]
    # When it runs
    result = cli.invoke(app, [*base, *args])
    # Then it fails naming the field, and nothing was written
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert count(settings, Schedule) == 0


CHARGE_PAYLOAD = {
    "amount": 100,
    "currency": "eur",
    "payment_method": "pm_card_visa",
    "description": "card 4242 4242 4242 4242 cvc 123",
}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--type", "payments.sandbox.charge", "--payload", json.dumps(CHARGE_PAYLOAD)],
            "card_data_refused: card data may not be sent",
        ),
        (["--name", "4242424242424242"], "card_data_refused: card data may not be sent"),
        (["--interval-s", "nan"], "interval_s: Input should be a finite number"),
        (["--interval-s", "inf"], "interval_s: Input should be a finite number"),
        (["--timezone", "localtime"], "unknown time zone 'localtime'"),
        (["--timezone", "right/UTC"], "unknown time zone 'right/UTC'"),
        (["--timezone", ""], "timezone"),
    ],
)
def test_the_shell_refuses_what_the_api_refuses_with_the_same_message(
    cli: CliRunner, settings: Settings, tenant_key: IssuedKey, args: list[str], expected: str
) -> None:
    # Given a create holding card data, a number that is not finite or a zone that is no IANA name
    tenant = tenant_name(settings, tenant_key)
    base = ["schedules", "create", "--tenant", tenant, "--name", "x", "--type", RATES]
    base += ["--payload", '{"base": "EUR"}', "--cron", "0 0 1 1 *", "--paused"]
    # When it runs (later options win)
    result = cli.invoke(app, [*base, *args])
    # Then it exits 2 with the message, without the card number, and nothing was written
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "4242 4242" not in result.output and "4242424242424242" not in result.output
    assert count(settings, Schedule) == 0


def test_show_lists_a_schedule_whose_times_run_past_year_9999(
    cli: CliRunner, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an hourly schedule in UTC+14 whose stored next slot is the last hour of year 9999
    tenant = tenant_name(settings, tenant_key)
    args = ["--payload", '{"base": "EUR"}', "--interval-s", "3600"]
    args += ["--timezone", "Pacific/Kiritimati", "--paused"]
    created = cli.invoke(
        app, ["schedules", "create", "--tenant", tenant, "--name", "far", "--type", RATES, *args]
    )
    assert created.exit_code == 0, created.output
    last_hour = datetime(9999, 12, 31, 23, tzinfo=UTC)
    with get_database(settings).session() as session:
        session.execute(
            update(Schedule).values(next_fire_at=last_hour, anchor_at=last_hour, start_at=last_hour)
        )
    # When it is shown and listed
    shown = cli.invoke(app, ["schedules", "show", "far", "--tenant", tenant])
    listed = cli.invoke(app, ["schedules", "list", "--tenant", tenant])
    # Then both work; the time that cannot be shown locally is left out
    assert shown.exit_code == 0, shown.output
    assert listed.exit_code == 0, listed.output
    assert json.loads(shown.output)["next_fire_times"] == []
