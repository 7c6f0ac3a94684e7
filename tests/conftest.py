"""Shared fixtures: a database per run on SQLite and PostgreSQL, a Redis key prefix per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from sqlalchemy import delete

from config.settings import Settings
from store.db import get_database, reset_database
from store.keys import IssuedKey, create_api_key
from store.migrate import upgrade
from store.models import (
    ApiKey,
    Attempt,
    AuditEvent,
    Job,
    Lease,
    LedgerEntry,
    PaymentHold,
    PaymentKey,
    ProviderEvent,
    Schedule,
    ScheduleRun,
    Tenant,
)
from store.webhook_models import (
    WebhookCallbackDelivery,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from tests.support.procs import Proc, free_port, http_ok, python_argv, wait_until

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
REDIS_URL = "redis://127.0.0.1:6379/0"
RUN_ID = uuid.uuid4().hex[:10]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Spread the long tests (`slow`, then other `e2e`) evenly over the xdist workers, first.

    `--dist worksteal` hands each worker one contiguous share of this order and lets an idle
    worker take over the rest of a busy one's share: dealing the cost-sorted list out like
    cards makes every share start with its part of the long tests, so no worker is left
    alone with them at the end. Every worker sorts the same way.
    """

    def cost(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is not None:
            return 0
        return 1 if item.get_closest_marker("e2e") is not None else 2

    items.sort(key=cost)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        items[:] = [item for i in range(workers) for item in items[i::workers]]


@pytest.fixture(scope="session")
def broker_prefix() -> Iterator[str]:
    """A Redis key prefix owned by this test run; its keys are deleted at the end."""
    prefix = f"cvtest-{RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file for this run."""
    path = tmp_path_factory.mktemp("db") / "conveyor.db"
    url = f"sqlite:///{path}"
    upgrade(Settings(database_url=url))
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database created for this run and dropped after it."""
    name = f"conveyor_test_{RUN_ID}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.format(name=name)
    upgrade(Settings(database_url=url))
    yield url
    reset_database()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


def make_settings(database_url: str, broker_prefix: str, **overrides: object) -> Settings:
    """Settings for a test: its database, its Redis prefix, quiet logs."""
    values: dict[str, object] = {
        "database_url": database_url,
        "broker_url": REDIS_URL,
        "broker_key_prefix": broker_prefix,
        "log_json": False,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, broker_prefix: str) -> Iterator[Settings]:
    """Settings on a clean database, with a Redis prefix of its own (queues, breakers, limits)."""
    s = make_settings(database_url, f"{broker_prefix}{uuid.uuid4().hex[:6]}:")
    yield s
    with get_database(s).session() as session:
        for model in (
            WebhookCallbackDelivery,
            WebhookCallbackSecret,
            WebhookDelivery,
            WebhookEvent,
            WebhookEndpoint,
            ScheduleRun,
            Schedule,
            Lease,
            LedgerEntry,
            PaymentHold,
            PaymentKey,
            ProviderEvent,
            AuditEvent,
            Attempt,
            Job,
            ApiKey,
            Tenant,
        ):
            session.execute(delete(model))


@pytest.fixture
def tenant_key(settings: Settings) -> IssuedKey:
    """An API key of a fresh tenant."""
    with get_database(settings).session() as session:
        return create_api_key(session, f"tenant-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def other_tenant_key(settings: Settings) -> IssuedKey:
    """An API key of a second, unrelated tenant."""
    with get_database(settings).session() as session:
        return create_api_key(session, f"other-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where child processes write their output."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def sandbox_url(logs_dir: Path) -> Iterator[str]:
    """The real sandbox provider server, its own process on a free port."""
    port = free_port()
    proc = Proc(
        "sandbox",
        python_argv("-m", "integrations.sandbox", "--host", "127.0.0.1", "--port", str(port)),
        {},
        logs_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/healthz"), f"the sandbox on port {port} to answer /healthz")
        yield url
    finally:
        proc.stop()


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[str]:
    """The sandbox with its counters, saved keys and fault script cleared for this test."""
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=5).raise_for_status()
    yield sandbox_url
    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=5).raise_for_status()
