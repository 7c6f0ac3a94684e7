"""EXPLAIN of the maintenance and list queries, built by the store's own functions.

Each function (`due_job_ids`, `stale_queued`, `expired_leases`, `list_jobs`) is called with a
stand-in session that keeps the statement it is handed and returns no rows; that statement is
compiled with its values inlined and explained. So the plan is of the query Conveyor runs, not of
a copy that could drift from it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ClauseElement, select
from sqlalchemy.orm import Session

from store.db import Database, is_sqlite
from store.jobs import job_cursor, list_jobs
from store.maintenance import due_job_ids, expired_leases, stale_queued
from store.models import Job
from tasks.maintenance import BATCH

# Plan nodes that read through an index (PostgreSQL), and SQLite's words for the same.
PG_INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
SQLITE_INDEX_WORDS = ("USING INDEX", "USING COVERING INDEX", "USING PRIMARY KEY")
SCAN_LINE = re.compile(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap \w+ Scan)[^(]*")
EXECUTION_TIME = re.compile(r"Execution Time: ([\d.]+) ms")
ROWS_REMOVED = re.compile(r"Rows Removed by Filter: (\d+)")
BUFFERS = re.compile(r"Buffers: shared (.+)$")


class _Capture:
    """Stands in for a Session: keeps the statement it is given and returns no rows."""

    def __init__(self) -> None:
        self.statement: ClauseElement | None = None

    def execute(self, statement: ClauseElement, *_args: Any, **_kwargs: Any) -> list[Any]:
        self.statement = statement
        return []

    scalars = execute


@dataclass(frozen=True)
class Plan:
    """One query's plan: the SQL explained, the plan text, and whether it reads via an index."""

    query: str
    sql: str
    plan: str
    uses_index: bool
    summary: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _captured(name: str, call: Callable[[Session], object]) -> ClauseElement:
    capture = _Capture()
    call(cast(Session, capture))
    if capture.statement is None:
        raise RuntimeError(f"{name} ran no statement")
    return capture.statement


def maintenance_queries(now: datetime, republish_after_s: float) -> dict[str, ClauseElement]:
    """The statements beat's publisher and sweeper would run at `now`, by function name."""
    stale_before = now - timedelta(seconds=republish_after_s)
    return {
        "due_job_ids": _captured("due_job_ids", lambda s: due_job_ids(s, now, BATCH)),
        "stale_queued": _captured("stale_queued", lambda s: stale_queued(s, stale_before, BATCH)),
        "expired_leases": _captured("expired_leases", lambda s: expired_leases(s, now, BATCH)),
    }


def list_query(db: Database, tenant_id: uuid.UUID, depth: int, limit: int) -> ClauseElement:
    """`GET /v1/jobs` as `list_jobs` builds it, `depth` jobs into the tenant's (or page 1)."""
    with db.session() as session:
        row = session.execute(
            select(Job.created_at, Job.id)
            .where(Job.tenant_id == tenant_id)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .offset(depth)
            .limit(1)
        ).first()
    cursor = None if row is None else job_cursor(Job(created_at=row.created_at, id=row.id))
    return _captured("list_jobs", lambda s: list_jobs(s, tenant_id, limit=limit, cursor=cursor))


def _pg_summary(lines: list[str]) -> tuple[bool, str]:
    scans = [m.group(0).strip() for line in lines if (m := SCAN_LINE.search(line))]
    uses_index = any(node in " ".join(scans) for node in PG_INDEX_NODES) and not any(
        scan.startswith("Seq Scan") for scan in scans
    )
    removed = sum(int(m.group(1)) for line in lines if (m := ROWS_REMOVED.search(line)))
    buffers = next((m.group(1) for line in lines if (m := BUFFERS.search(line))), "none")
    timing = next((m.group(1) for line in lines if (m := EXECUTION_TIME.search(line))), "?")
    shown = "; ".join(scans) or "no scan"
    return uses_index, f"{shown}; {removed:,} rows filtered out; buffers {buffers}; {timing} ms"


def _sqlite_summary(lines: list[str]) -> tuple[bool, str]:
    reads = [line for line in lines if line.startswith(("SCAN", "SEARCH"))]
    uses_index = bool(reads) and all(
        any(word in line for word in SQLITE_INDEX_WORDS) for line in reads
    )
    return uses_index, "; ".join(lines)


def explain(db: Database, name: str, statement: ClauseElement) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""
    inlined = {"literal_binds": True}
    sql = str(statement.compile(dialect=db.engine.dialect, compile_kwargs=inlined))
    sqlite = is_sqlite(str(db.engine.url))
    with db.engine.connect() as conn:
        if sqlite:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            lines = [str(row[-1]) for row in rows]
        else:
            rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").all()
            lines = [str(row[0]) for row in rows]
    uses_index, summary = _sqlite_summary(lines) if sqlite else _pg_summary(lines)
    return Plan(name, sql, "\n".join(lines), uses_index, summary)


def maintenance_plans(db: Database, now: datetime, republish_after_s: float) -> list[Plan]:
    """The plan of every maintenance query against `db` as it stands."""
    queries = maintenance_queries(now, republish_after_s)
    return [explain(db, name, statement) for name, statement in queries.items()]
