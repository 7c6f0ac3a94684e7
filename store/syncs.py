"""Sync state: one row per (tenant, provider, resource) with its cursor and the pass's counts.

The cursor moves in the same transaction as the page it follows (`store_page` in
`tasks/data_sync.py`), fenced on the job that holds the sync, so a crash between pages resumes
exactly after the last committed one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Update,
    bindparam,
    case,
    select,
    text,
    update,
)
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
    """Where a committed page leaves the sync: the next cursor (None ends the pass), and the
    validators a first page came with."""

    next_cursor: str | None
    counts: UpsertCounts
    etag: str | None = None
    last_modified: str | None = None


def save_page(
    conn: Connection, scope: Scope, job_id: uuid.UUID, page: PageSaved, now: datetime
) -> bool:
    """Move the cursor on and add the page's counts; False when another job holds the sync."""
    params = {
        "s_tenant": scope.tenant_id,
        "s_provider": scope.provider,
        "s_resource": scope.resource,
        "s_job": job_id,
        "s_cursor": page.next_cursor,
        "s_fetched": page.counts.fetched,
        "s_inserted": page.counts.inserted,
        "s_updated": page.counts.updated,
        "s_unchanged": page.counts.unchanged,
        "s_etag": page.etag,
        "s_last_modified": page.last_modified,
        "s_now": now,
    }
    result = conn.execute(_SAVE_LAST if page.next_cursor is None else _SAVE, params)
    return result.rowcount == 1


def _save_statement(ends_pass: bool) -> Update:
    """The cursor's move, built once: one compiled statement for every page."""
    # The validators are the first page's (the page saved while the cursor is still empty):
    # a pass from the top sends them, and it starts only once this pass has completed.
    first = SYNCS.c.cursor.is_(None)
    values: dict[str, object] = {
        "cursor": bindparam("s_cursor", type_=SYNCS.c.cursor.type),
        "pages": SYNCS.c.pages + 1,
        "fetched": SYNCS.c.fetched + bindparam("s_fetched", type_=Integer()),
        "inserted": SYNCS.c.inserted + bindparam("s_inserted", type_=Integer()),
        "updated": SYNCS.c.updated + bindparam("s_updated", type_=Integer()),
        "unchanged": SYNCS.c.unchanged + bindparam("s_unchanged", type_=Integer()),
        "last_page_at": bindparam("s_now", type_=SYNCS.c.last_page_at.type),
        "etag": case((first, bindparam("s_etag", type_=SYNCS.c.etag.type)), else_=SYNCS.c.etag),
        "last_modified": case(
            (first, bindparam("s_last_modified", type_=SYNCS.c.last_modified.type)),
            else_=SYNCS.c.last_modified,
        ),
    }
    if ends_pass:
        values.update(
            last_success_at=bindparam("s_now", type_=SYNCS.c.last_success_at.type),
            last_error=None,
        )
    return (
        update(SYNCS)
        .where(
            SYNCS.c.tenant_id == bindparam("s_tenant", type_=SYNCS.c.tenant_id.type),
            SYNCS.c.provider == bindparam("s_provider", type_=SYNCS.c.provider.type),
            SYNCS.c.resource == bindparam("s_resource", type_=SYNCS.c.resource.type),
            SYNCS.c.job_id == bindparam("s_job", type_=SYNCS.c.job_id.type),
        )
        .values(**values)
    )


_SAVE = _save_statement(ends_pass=False)
_SAVE_LAST = _save_statement(ends_pass=True)


def commit_without_flush(conn: Connection) -> None:
    """On PostgreSQL, let this transaction's COMMIT return before its WAL reaches the disk
    (`synchronous_commit = off`, for this transaction alone).

    A page's commit then costs no fsync. A server crash may undo the last pages a sync
    committed, never partly: their records and cursor go together, and the next run fetches
    them again from the cursor that survived. A job's own end is a synchronous commit, which
    flushes every page committed before it. (SQLite workers make the same trade with
    `CONVEYOR_WORKER_SQLITE_SYNCHRONOUS=NORMAL`.)
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_NO_FLUSH)


_NO_FLUSH = text("SET LOCAL synchronous_commit TO OFF")


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
