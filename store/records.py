"""Stored provider records: a page upserted in one statement, counted as inserted/updated/unchanged.

Keyed by (tenant, provider, resource, natural key). A page goes to the database as ONE JSON
parameter (`[{"k": key, "h": hash, "d": data}, …]`) that the database unpacks itself
(SQLite `json_each`, PostgreSQL `json_to_recordset`) into `INSERT … SELECT … ON CONFLICT DO
UPDATE`: one statement and one round trip per page, with nothing converted per row in Python.
A record whose hash is unchanged keeps its data and change time and gets only its last sighting
and job; `RETURNING` tells an insert (first seen = last seen), an update (changed = last seen)
and an unchanged record apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, TextClause, Uuid, and_, bindparam, or_, select, text
from sqlalchemy.orm import Session

from store.data_models import DataRecord
from store.types import UTCDateTime


class NewRecord(NamedTuple):
    """A record as fetched: natural key, its fields as canonical JSON, and that text's SHA-256."""

    key: str
    data_json: str
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


# What RETURNING says of each row: 2 inserted, 1 updated, 0 unchanged.
_INSERTED, _UPDATED = 2, 1
_UPSERT_SQL = {
    # SQLite needs a WHERE on an upsert's SELECT, so that ON CONFLICT is not read as a join's.
    "sqlite": """
INSERT INTO data_records (tenant_id, provider, resource, natural_key, data, content_hash, job_id,
                          first_seen_at, last_seen_at, changed_at)
SELECT :tenant_id, :provider, :resource, r.value ->> '$.k', r.value -> '$.d', r.value ->> '$.h',
       :job_id, :now, :now, :now
FROM json_each(:page) AS r WHERE true
ON CONFLICT (tenant_id, provider, resource, natural_key) DO UPDATE SET
    data = CASE WHEN data_records.content_hash = excluded.content_hash
                THEN data_records.data ELSE excluded.data END,
    changed_at = CASE WHEN data_records.content_hash = excluded.content_hash
                      THEN data_records.changed_at ELSE excluded.changed_at END,
    content_hash = excluded.content_hash,
    job_id = excluded.job_id,
    last_seen_at = excluded.last_seen_at
RETURNING CAST(first_seen_at = last_seen_at AS INTEGER) + CAST(changed_at = last_seen_at AS INTEGER)
""",
    "postgresql": """
INSERT INTO data_records (tenant_id, provider, resource, natural_key, data, content_hash, job_id,
                          first_seen_at, last_seen_at, changed_at)
SELECT :tenant_id, :provider, :resource, r.k, r.d, r.h, :job_id, :now, :now, :now
FROM json_to_recordset(CAST(:page AS json)) AS r(k text, h text, d json)
ON CONFLICT (tenant_id, provider, resource, natural_key) DO UPDATE SET
    data = CASE WHEN data_records.content_hash = excluded.content_hash
                THEN data_records.data ELSE excluded.data END,
    changed_at = CASE WHEN data_records.content_hash = excluded.content_hash
                      THEN data_records.changed_at ELSE excluded.changed_at END,
    content_hash = excluded.content_hash,
    job_id = excluded.job_id,
    last_seen_at = excluded.last_seen_at
RETURNING CAST(first_seen_at = last_seen_at AS INTEGER) + CAST(changed_at = last_seen_at AS INTEGER)
""",
}
_UPSERTS: dict[str, TextClause] = {}


def _upsert(dialect_name: str) -> TextClause:
    stmt = _UPSERTS.get(dialect_name)
    if stmt is None:
        stmt = _UPSERTS[dialect_name] = text(_UPSERT_SQL[dialect_name]).bindparams(
            bindparam("tenant_id", type_=Uuid()),
            bindparam("job_id", type_=Uuid()),
            bindparam("now", type_=UTCDateTime()),
        )
    return stmt


def page_json(records: Sequence[NewRecord]) -> str:
    """The page as the one JSON parameter of the upsert; a key twice counts once (the last)."""
    latest = {record.key: record for record in records}
    return (
        "["
        + ",".join(
            f'{{"k":{json.dumps(r.key)},"h":"{r.content_hash}","d":{r.data_json}}}'
            for r in latest.values()
        )
        + "]"
    )


def upsert_records(
    conn: Connection, scope: Scope, job_id: uuid.UUID, records: Sequence[NewRecord], now: datetime
) -> UpsertCounts:
    """Insert new records, update changed ones, leave unchanged ones but their last sighting.

    One statement whatever the page size; a key twice in one page counts once (the last copy
    wins). Runs inside the caller's transaction.
    """
    if not records:
        return UpsertCounts()
    params = {
        "tenant_id": scope.tenant_id,
        "provider": scope.provider,
        "resource": scope.resource,
        "job_id": job_id,
        "now": now,
        "page": page_json(records),
    }
    states = conn.execute(_upsert(conn.dialect.name), params).scalars().all()
    inserted = sum(1 for state in states if state == _INSERTED)
    updated = sum(1 for state in states if state == _UPDATED)
    return UpsertCounts(len(states), inserted, updated, len(states) - inserted - updated)


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
