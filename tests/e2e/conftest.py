"""End-to-end fixtures: each test gets a database and a broker prefix no other test touches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from store.db import get_database, reset_database
from store.keys import IssuedKey, create_api_key
from store.migrate import upgrade
from tests.conftest import make_settings
from tests.e2e.browser import browser  # noqa: F401  (the headless Chromium fixture)


@pytest.fixture
def fresh_settings(tmp_path: Path, broker_prefix: str) -> Iterator[Settings]:
    """A migrated SQLite file and key prefix of this test alone: its sweeper sees only its jobs."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'conveyor.db'}", f"{broker_prefix}{uuid.uuid4().hex[:6]}:"
    )
    upgrade(settings)
    yield settings
    reset_database()


@pytest.fixture
def key(fresh_settings: Settings) -> IssuedKey:
    """An API key of a fresh tenant in this test's database."""
    with get_database(fresh_settings).session() as session:
        return create_api_key(session, f"t-{uuid.uuid4().hex[:8]}")
