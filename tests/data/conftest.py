"""The world of data-sync tests: settings aimed at the sandbox feeds, a key for secrets, and
the data tables emptied after each test (before the shared fixture deletes tenants)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import delete

from config.settings import Settings
from store.data_models import DataRecord, DataSecret, DataSource, DataSync
from store.db import get_database
from tests.tasks.factories import with_sandbox

SECRET_KEY = Fernet.generate_key().decode()


def set_feed(sandbox_url: str, **spec: Any) -> dict[str, Any]:
    """Set the sandbox feeds (items, revisions, ecb_revision, delay_ms, token, faults)."""
    response = requests.post(f"{sandbox_url}/_sandbox/data", json=spec, timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def feed_stats(sandbox_url: str) -> dict[str, Any]:
    """The feeds' request counters."""
    body: dict[str, Any] = requests.get(f"{sandbox_url}/_sandbox/data", timeout=5).json()
    return body


def clear_data_tables(settings: Settings) -> None:
    """Delete every data-provider row (records, syncs, sources, secrets)."""
    with get_database(settings).session() as session:
        for model in (DataRecord, DataSync, DataSource, DataSecret):
            session.execute(delete(model))


@pytest.fixture
def feed(sandbox: str) -> Iterator[str]:
    """The sandbox with its data feeds back at their defaults."""
    set_feed(sandbox, reset=True)
    yield sandbox
    set_feed(sandbox, reset=True)


@pytest.fixture
def data_settings(settings: Settings, feed: str) -> Iterator[Settings]:
    """Settings on the sandbox feeds with a secret key, loopback allowed (the sandbox is local)."""
    s = with_sandbox(
        settings,
        feed,
        fx_base_url=f"{feed}/ecb",
        data_secret_key=SecretStr(SECRET_KEY),
        outbound_allow_loopback=True,
    )
    yield s
    clear_data_tables(s)
