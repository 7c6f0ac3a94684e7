"""Stored provider records: a page upserted in one statement, counted as inserted/updated/unchanged.

Keyed by (tenant, provider, resource, natural key). The upsert is SQLite's and PostgreSQL's
`INSERT … ON CONFLICT (…) DO UPDATE … WHERE content_hash differs`, so an unchanged record is
not rewritten; `RETURNING first_seen_at` tells an insert (first seen now) from an update, and
whatever did not come back was unchanged: its `last_seen_at` is bumped by one more UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.data_models import RECORDS, DataRecord


class NewRecord(NamedTuple):
    """A record as fetched: natural key, fields, and the SHA-256 of its canonical JSON."""

    key: str
    data: dict[str, Any]
    content_hash: str


@dataclass(frozen=True)
class UpsertCounts:
    """What one page did to the table."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class Scope:
    """Whose records: a tenant's resource at a provider."""

    tenant_id: uuid.UUID
    provider: str
    resource: str


def upsert_records(
    conn: Connection, scope: Scope, job_id: uuid.UUID, records: Sequence[NewRecord], now: datetime
) -> UpsertCounts:
    """Insert new records, update changed ones, leave unchanged ones but their last sighting.

    One or two statements whatever the page size; a key twice in one page counts once (the
    last copy wins). Runs inside the caller's transaction.
    """
    latest = {record.key: record for record in records}
    if not latest:
        return UpsertCounts()
    rows = [
        {
            "tenant_id": scope.tenant_id,
            "provider": scope.provider,
            "resource": scope.resource,
            "natural_key": record.key,
            "data": record.data,
            "content_hash": record.content_hash,
            "job_id": job_id,
            "first_seen_at": now,
            "last_seen_at": now,
            "changed_at": now,
        }
        for record in latest.values()
    ]
    # One constant statement executed with many parameter sets: SQLAlchemy's "insertmanyvalues"
    # sends it as batched multi-row VALUES (one round trip per page) and compiles it once.
    written = conn.execute(_upsert(conn.dialect.name), rows).all()
    inserted = sum(1 for row in written if row.first_seen_at == now)
    unchanged = set(latest) - {row.natural_key for row in written}
    if unchanged:
        conn.execute(
            update(RECORDS)
            .where(
                RECORDS.c.tenant_id == scope.tenant_id,
                RECORDS.c.provider == scope.provider,
                RECORDS.c.resource == scope.resource,
                RECORDS.c.natural_key.in_(bindparam("keys", expanding=True)),
            )
            .values(last_seen_at=now, job_id=job_id),
            {"keys": sorted(unchanged)},
        )
    return UpsertCounts(len(latest), inserted, len(written) - inserted, len(unchanged))


_UPSERTS: dict[str, Any] = {}


def _upsert(dialect_name: str) -> Any:
    """`INSERT … ON CONFLICT (key) DO UPDATE … WHERE hash differs RETURNING key, first_seen`."""
    stmt = _UPSERTS.get(dialect_name)
    if stmt is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        insert = dialect.insert(RECORDS)
        excluded = insert.excluded
        stmt = _UPSERTS[dialect_name] = insert.on_conflict_do_update(
            index_elements=["tenant_id", "provider", "resource", "natural_key"],
            set_={
                "data": excluded.data,
                "content_hash": excluded.content_hash,
                "job_id": excluded.job_id,
                "last_seen_at": excluded.last_seen_at,
                "changed_at": excluded.changed_at,
            },
            where=RECORDS.c.content_hash != excluded.content_hash,
        ).returning(RECORDS.c.natural_key, RECORDS.c.first_seen_at)
    return stmt


@dataclass(frozen=True)
class RecordFilter:
    """What to list: exact key or key prefix, top-level field values, changed since, after a
    keyset position. Field filters compare the record's JSON field as text (SQLite
    `json_extract`, PostgreSQL `->>`) within the tenant's resource; they use no index."""

    key: str | None = None
    key_prefix: str | None = None
    changed_since: datetime | None = None
    after: tuple[datetime, int] | None = None  # (changed_at, id) of the last row seen
    fields: tuple[tuple[str, str], ...] = ()


def list_records(session: Session, scope: Scope, flt: RecordFilter, limit: int) -> list[DataRecord]:
    """A tenant's records of one resource, oldest change first, keyset-paginated on
    (changed_at, id) over the index `ix_data_records_changed`."""
    stmt = select(DataRecord).where(
        DataRecord.tenant_id == scope.tenant_id,
        DataRecord.provider == scope.provider,
        DataRecord.resource == scope.resource,
    )
    if flt.key is not None:
        stmt = stmt.where(DataRecord.natural_key == flt.key)
    if flt.key_prefix:
        escaped = flt.key_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(DataRecord.natural_key.like(f"{escaped}%", escape="\\"))
    for name, value in flt.fields:
        stmt = stmt.where(DataRecord.data[name].as_string() == value)
    if flt.changed_since is not None:
        stmt = stmt.where(DataRecord.changed_at >= flt.changed_since)
    if flt.after is not None:
        at, last_id = flt.after
        stmt = stmt.where(
            or_(
                DataRecord.changed_at > at,
                and_(DataRecord.changed_at == at, DataRecord.id > last_id),
            )
        )
    stmt = stmt.order_by(DataRecord.changed_at, DataRecord.id).limit(limit)
    return list(session.scalars(stmt))
