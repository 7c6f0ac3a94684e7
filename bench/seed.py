"""Job rows by the hundred thousand: COPY on PostgreSQL, executemany on SQLite, one row recipe.

Non-terminal rows are seeded healthy: queued ones published just now, running ones leased for an
hour, retrying ones due in an hour. The maintenance queries then find nothing to do, which is the
state they run in every second; what they cost there is what the table's size adds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import psycopg
from sqlalchemy import insert

from bench.databases import libpq
from bench.jobs import NOOP_NAME
from bench.runner import say
from store.db import Database, is_sqlite
from store.models import Job
from store.states import TERMINAL_STATES, JobState
from store.types import utcnow

# A table that has lived: mostly finished jobs and some of every other state (weights).
HISTORY: tuple[tuple[JobState, int], ...] = (
    (JobState.SUCCEEDED, 80),
    (JobState.FAILED, 5),
    (JobState.DEAD, 3),
    (JobState.CANCELLED, 2),
    (JobState.NEEDS_REVIEW, 1),
    (JobState.QUEUED, 3),
    (JobState.RUNNING, 2),
    (JobState.RETRYING, 4),
)
# Jobs waiting to retry, as a provider outage leaves them.
WAITING: tuple[tuple[JobState, int], ...] = ((JobState.RETRYING, 1),)
SPAN = timedelta(days=30)
AHEAD = timedelta(hours=1)
CHUNK = 20_000
PROGRESS_EVERY = 200_000


def _states(mix: Sequence[tuple[JobState, int]]) -> list[JobState]:
    return [state for state, weight in mix for _ in range(weight)]


def _row(g: int, rows: int, tenant: uuid.UUID, state: JobState, now: datetime) -> dict[str, Any]:
    """Row `g` of `rows`: created oldest first over SPAN, its timestamps consistent with `state`."""
    created = now - SPAN * (rows - g) / rows
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": tenant,
        "type": NOOP_NAME,
        "queue": "data",
        "payload": {},
        "state": state.value,
        "request_hash": "0" * 64,
        "attempts": 0,
        "deliveries": 0,
        "max_attempts": 5,
        "result": None,
        "error": None,
        "error_class": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": None,
        "enqueued_at": created,
        "created_at": created,
        "updated_at": created,
        "started_at": None,
        "finished_at": None,
    }
    if state in TERMINAL_STATES:
        finished = created + timedelta(seconds=2)
        row.update(attempts=1, deliveries=1, started_at=created, finished_at=finished)
        row.update(updated_at=finished)
        if state is JobState.SUCCEEDED:
            row["result"] = {}
        elif state in (JobState.FAILED, JobState.DEAD):
            row.update(error={"class": "provider_error"}, error_class="provider_error")
    elif state is JobState.QUEUED:
        row["enqueued_at"] = now
    elif state is JobState.RUNNING:
        row.update(attempts=1, deliveries=1, started_at=now, lease_owner="seed")
        row["lease_expires_at"] = now + AHEAD
    elif state is JobState.RETRYING:
        row.update(attempts=1, deliveries=1)
        row["next_attempt_at"] = now + AHEAD + timedelta(seconds=g % 600)
    return row


def job_rows(
    rows: int, tenants: Sequence[uuid.UUID], mix: Sequence[tuple[JobState, int]], now: datetime
) -> Iterator[dict[str, Any]]:
    """`rows` job rows: half for the first tenant, the rest round-robin over the others."""
    states = _states(mix)
    others = list(tenants[1:]) or [tenants[0]]
    for g in range(rows):
        tenant = tenants[0] if g % 2 == 0 else others[(g // 2) % len(others)]
        yield _row(g, rows, tenant, states[g % len(states)], now)


def _copy_value(value: Any) -> Any:
    if isinstance(value, datetime):  # the columns are timestamp without time zone, in UTC
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _progress(done: int, total: int) -> None:
    if done == total or done % PROGRESS_EVERY < CHUNK:
        say(f"  seeded {done:,} of {total:,} rows")


def _copy(url: str, rows: Iterator[dict[str, Any]], total: int) -> None:
    done = 0
    with psycopg.connect(libpq(url)) as conn:
        while chunk := list(islice(rows, CHUNK)):
            columns = ", ".join(chunk[0])
            with conn.cursor() as cursor, cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row([_copy_value(value) for value in row.values()])
            conn.commit()
            done += len(chunk)
            _progress(done, total)
        conn.autocommit = True
        # What autovacuum would have done by now on a table that grew to this size; then flush
        # the seed's writes, so a checkpoint of them does not compete with what is measured.
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("CHECKPOINT")


def _executemany(db: Database, rows: Iterator[dict[str, Any]], total: int) -> None:
    # SQLite has no auto-ANALYZE and Conveyor never runs ANALYZE, so the seed does not either.
    done = 0
    while chunk := list(islice(rows, CHUNK)):
        with db.engine.begin() as conn:
            conn.execute(insert(Job), chunk)
        done += len(chunk)
        _progress(done, total)


def seed_jobs(
    db: Database,
    tenants: Sequence[uuid.UUID],
    rows: int,
    mix: Sequence[tuple[JobState, int]] = HISTORY,
) -> float:
    """Insert `rows` job rows spread over `tenants` and the states of `mix`; returns seconds."""
    started = time.monotonic()
    generated = job_rows(rows, tenants, mix, utcnow())
    url = db.engine.url.render_as_string(hide_password=False)
    if is_sqlite(url):
        _executemany(db, generated, rows)
    else:
        _copy(url, generated, rows)
    return time.monotonic() - started
