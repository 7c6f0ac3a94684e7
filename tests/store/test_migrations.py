"""Migrations: the models and the migrated schema agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from config.settings import Settings
from store.db import get_database
from store.models import Base


def test_migrated_schema_matches_the_models(settings: Settings) -> None:
    # Given a database migrated to head
    engine = get_database(settings).engine
    # When Alembic compares it with the models
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Then there is nothing a new migration would have to add or drop
    significant = [d for d in diff if d[0] not in {"modify_nullable", "modify_default"}]
    assert significant == []
