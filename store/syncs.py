"""Sync state: one row per (tenant, provider, resource) with its cursor and the pass's counts.

The cursor moves in the same transaction as the page it follows (`store_page` in
`tasks/data_sync.py`), fenced on the job that holds the sync, so a crash between pages resumes
exactly after the last committed one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.data_models import SYNCS, DataSync
from store.records import Scope, UpsertCounts

ERROR_MAX = 1000


@dataclass(frozen=True)
class SyncRow:
    """A sync as a run finds it when it begins."""

    cursor: str | None
    etag: str | None
    last_modified: str | None
    pages: int
    counts: UpsertCounts


def _scoped(scope: Scope) -> tuple[ColumnElement[bool], ...]:
    return (
        SYNCS.c.tenant_id == scope.tenant_id,
        SYNCS.c.provider == scope.provider,
        SYNCS.c.resource == scope.resource,
    )


def begin_sync(conn: Connection, scope: Scope, job_id: uuid.UUID, now: datetime) -> SyncRow:
    """Take the sync for `job_id` (creating it); a pass with no cursor starts from zero."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(SYNCS)
        .values(
            tenant_id=scope.tenant_id,
            provider=scope.provider,
            resource=scope.resource,
            pages=0,
            fetched=0,
            inserted=0,
            updated=0,
            unchanged=0,
        )
        .on_conflict_do_nothing()
    )
    fresh = SYNCS.c.cursor.is_(None)
    row = conn.execute(
        update(SYNCS)
        .where(*_scoped(scope))
        .values(
            job_id=job_id,
            pages=case((fresh, 0), else_=SYNCS.c.pages),
            fetched=case((fresh, 0), else_=SYNCS.c.fetched),
            inserted=case((fresh, 0), else_=SYNCS.c.inserted),
            updated=case((fresh, 0), else_=SYNCS.c.updated),
            unchanged=case((fresh, 0), else_=SYNCS.c.unchanged),
            pass_started_at=case((fresh, now), else_=SYNCS.c.pass_started_at),
        )
        .returning(
            SYNCS.c.cursor,
            SYNCS.c.etag,
            SYNCS.c.last_modified,
            SYNCS.c.pages,
            SYNCS.c.fetched,
            SYNCS.c.inserted,
            SYNCS.c.updated,
            SYNCS.c.unchanged,
        )
    ).one()
    counts = UpsertCounts(row.fetched, row.inserted, row.updated, row.unchanged)
    return SyncRow(row.cursor, row.etag, row.last_modified, row.pages, counts)


@dataclass(frozen=True)
class PageSaved:
    """Where a committed page leaves the sync: the next cursor (None ends the pass)."""

    next_cursor: str | None
    counts: UpsertCounts
    etag: str | None = None
    last_modified: str | None = None


def save_page(
    conn: Connection, scope: Scope, job_id: uuid.UUID, page: PageSaved, now: datetime
) -> bool:
    """Move the cursor on and add the page's counts; False when another job holds the sync."""
    values: dict[str, object] = {
        "cursor": page.next_cursor,
        "pages": SYNCS.c.pages + 1,
        "fetched": SYNCS.c.fetched + page.counts.fetched,
        "inserted": SYNCS.c.inserted + page.counts.inserted,
        "updated": SYNCS.c.updated + page.counts.updated,
        "unchanged": SYNCS.c.unchanged + page.counts.unchanged,
        "last_page_at": now,
    }
    if page.next_cursor is None:
        values.update(
            etag=page.etag, last_modified=page.last_modified, last_success_at=now, last_error=None
        )
    result = conn.execute(
        update(SYNCS).where(*_scoped(scope), SYNCS.c.job_id == job_id).values(**values)
    )
    return result.rowcount == 1


def note_failure(
    conn: Connection, scope: Scope, job_id: uuid.UUID, message: str, now: datetime
) -> None:
    """Record why the job's run stopped; the cursor stays at the last committed page."""
    conn.execute(
        update(SYNCS)
        .where(*_scoped(scope), SYNCS.c.job_id == job_id)
        .values(last_error=message[:ERROR_MAX], last_error_at=now)
    )


def list_syncs(session: Session, tenant_id: uuid.UUID) -> list[DataSync]:
    """Every sync of a tenant, by provider and resource."""
    stmt = (
        select(DataSync)
        .where(DataSync.tenant_id == tenant_id)
        .order_by(DataSync.provider, DataSync.resource)
    )
    return list(session.scalars(stmt))
