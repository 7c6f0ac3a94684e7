"""Run Alembic migrations from code, so `conveyor migrate` needs no alembic.ini on disk."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from config.settings import Settings
from store.db import create_database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database up to `revision` (creating the SQLite file and WAL mode first)."""
    db = create_database(settings)
    try:
        db.ping()  # creates the SQLite file and switches it to WAL before Alembic connects
    finally:
        db.dispose()
    command.upgrade(alembic_config(settings.database_url), revision)
