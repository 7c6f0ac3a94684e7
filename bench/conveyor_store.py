"""Conveyor's DB and broker as the benchmark uses them in-process: seed jobs, publish, count."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select

from bench.jobs import NOOP_NAME
from bench.procs import Proc, wait_until
from config.settings import Settings
from store.db import Database, create_database
from store.jobs import NewJob, submit_jobs
from store.keys import IssuedKey, create_api_key
from store.migrate import upgrade
from store.models import Attempt, Job
from store.states import TERMINAL_STATES
from store.types import utcnow
from tasks.publish import producer_app, publish_many

INSERT_CHUNK = 500
TERMINAL = [state.value for state in TERMINAL_STATES]
PROBE_TIMEOUT_S = 60.0
PING_TIMEOUT_S = 0.5
# Far enough ahead that the submit is not already due, near enough not to wait on it.
DUE_PROBE_DELAY = timedelta(seconds=0.5)


def prepare(settings: Settings, tenant: str = "bench") -> tuple[Database, IssuedKey]:
    """Migrate a fresh database and issue an API key; the caller disposes of the engine."""
    upgrade(settings)
    db = create_database(settings)
    with db.session() as session:
        issued = create_api_key(session, tenant, "bench")
    return db, issued


def insert_jobs(
    db: Database, tenant_id: uuid.UUID, job_type: str, payload: dict[str, Any], count: int
) -> list[uuid.UUID]:
    """Commit `count` queued jobs as the API would, in chunks; nothing is published."""
    ids: list[uuid.UUID] = []
    for start in range(0, count, INSERT_CHUNK):
        news = [
            NewJob(
                tenant_id=tenant_id,
                type=job_type,
                queue="data",
                payload=payload,
                request_hash="0" * 64,
                max_attempts=1,
            )
            for _ in range(min(INSERT_CHUNK, count - start))
        ]
        ids.extend(job.id for job in submit_jobs(db, news))
    return ids


def publish_ids(
    settings: Settings, ids: Sequence[uuid.UUID], job_type: str, queue: str = "data"
) -> None:
    """Publish job ids over one producer connection, as the batch API does."""
    failed = publish_many(producer_app(settings), [(job_id, job_type, queue) for job_id in ids])
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(ids)} job ids were not published")


def terminal_count(db: Database, tenant_id: uuid.UUID) -> int:
    """How many of a tenant's jobs reached a terminal state (an indexed count).

    Counting one tenant keeps the poll cheap when other tenants' rows fill the table (growth).
    """
    stmt = select(func.count()).where(Job.tenant_id == tenant_id, Job.state.in_(TERMINAL))
    with db.session() as session:
        return int(session.scalar(stmt) or 0)


def state_counts(db: Database, tenant_id: uuid.UUID) -> dict[str, int]:
    """A tenant's jobs per state (a full count: only between timed runs)."""
    stmt = select(Job.state, func.count()).where(Job.tenant_id == tenant_id).group_by(Job.state)
    with db.session() as session:
        rows = session.execute(stmt).all()
    return {state: int(count) for state, count in rows}


def delete_jobs(db: Database, tenant_id: uuid.UUID) -> None:
    """Delete a tenant's jobs and their attempts, so a table returns to its seeded size."""
    ids = select(Job.id).where(Job.tenant_id == tenant_id)
    with db.session() as session:
        session.execute(delete(Attempt).where(Attempt.job_id.in_(ids)))
        session.execute(delete(Job).where(Job.tenant_id == tenant_id))


def prove_consuming(settings: Settings, db: Database, tenant_id: uuid.UUID, worker: Proc) -> None:
    """Run one no-op probe job through the worker: it is up when it has finished a job."""
    before = terminal_count(db, tenant_id)
    ids = insert_jobs(db, tenant_id, NOOP_NAME, {}, 1)
    publish_ids(settings, ids, NOOP_NAME)
    wait_until(
        lambda: terminal_count(db, tenant_id) > before,
        f"{worker.name} to finish a probe job",
        timeout=PROBE_TIMEOUT_S,
        watch=[worker],
    )


def prove_listening(settings: Settings, workers: Sequence[Proc]) -> None:
    """Every worker answers a remote-control ping (a probe job proves only one of several)."""
    app = producer_app(settings)
    host = socket.gethostname()
    wanted = {f"{worker.name}@{host}" for worker in workers}

    def all_answer() -> bool:
        replies = app.control.ping(destination=sorted(wanted), timeout=PING_TIMEOUT_S)
        return wanted <= {name for reply in replies for name in reply}

    wait_until(
        all_answer,
        f"{', '.join(sorted(wanted))} to answer a ping",
        timeout=PROBE_TIMEOUT_S,
        watch=workers,
    )


def prove_publishing_due(db: Database, tenant_id: uuid.UUID, beat: Proc, worker: Proc) -> None:
    """Commit a job due in a moment, unpublished: done once beat's publisher has sent it on."""
    before = terminal_count(db, tenant_id)
    due = NewJob(
        tenant_id=tenant_id,
        type=NOOP_NAME,
        queue="data",
        payload={},
        request_hash="0" * 64,
        max_attempts=1,
        run_at=utcnow() + DUE_PROBE_DELAY,
    )
    submit_jobs(db, [due])
    wait_until(
        lambda: terminal_count(db, tenant_id) > before,
        f"{beat.name} to publish a due probe job and {worker.name} to finish it",
        timeout=PROBE_TIMEOUT_S,
        watch=[beat, worker],
    )
