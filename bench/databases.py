"""A fresh database per scenario: a SQLite file in a temp dir, or a PostgreSQL one dropped after."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KINDS = ("sqlite", "postgresql")


def libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg's own connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(
    kind: str, workdir: Path, postgres_url: str = DEFAULT_POSTGRES_URL
) -> Iterator[str]:
    """Yield the URL of an empty database of `kind`, removed when the block ends."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}, expected one of {KINDS}")
    name = f"bench_{secrets.token_hex(4)}"
    admin = libpq(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wal_position(url: str) -> int | None:
    """PostgreSQL's current WAL position in bytes (the whole cluster's), None on SQLite."""
    if make_url(url).get_backend_name() != "postgresql":
        return None
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else None
