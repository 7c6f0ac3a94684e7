"""`conveyor schedules …` against real SQLite and PostgreSQL: the API's rules from a shell."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
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
