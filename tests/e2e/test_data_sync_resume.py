"""A data sync whose worker is SIGKILLed mid-sync resumes after the last committed page on
another worker, on SQLite and PostgreSQL: no record twice, none missing, every hash as the
provider serves it. The counts are printed; run with `-s` to see them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from config.settings import Settings
from integrations.data.base import Record
from integrations.sandbox.data_feed import item
from store.data_models import DataRecord, DataSync
from store.db import get_database, reset_database
from store.keys import IssuedKey, create_api_key
from store.migrate import upgrade
from store.secrets import put_secret
from store.sources import put_source
from tasks.publish import producer_app, publish
from tests.conftest import PG_ADMIN_DSN, PG_URL, make_settings
from tests.data.conftest import SECRET_KEY, feed_stats, set_feed
from tests.e2e.stack import beat_process, kill_group, stack_env
from tests.support.procs import Proc, free_port, python_argv, wait_until
from tests.tasks.factories import load, make_job

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ITEMS, PAGE = 2000, 100
PAGES = ITEMS // PAGE
RECOVERY = {
    "lease_s": "7",
    "attempt_deadline_s": "6",
    "republish_after_s": "2",
    "max_deliveries": "10",
    "data_secret_key": SECRET_KEY,
    "outbound_allow_loopback": "true",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def own_settings(
    request: pytest.FixtureRequest, tmp_path: Path, broker_prefix: str
) -> Iterator[Settings]:
    """A migrated database of this test alone (its sweeper sees only its jobs), and a prefix."""
    prefix = f"{broker_prefix}{uuid.uuid4().hex[:6]}:"
    name = f"conveyor_resume_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'resume.db'}"
    else:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.format(name=name)
    settings = make_settings(url, prefix, data_secret_key=SecretStr(SECRET_KEY))
    upgrade(settings)
    yield settings
    reset_database()
    if request.param == "postgresql":
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def two_workers(env: dict[str, str], logs: Path) -> Iterator[tuple[Proc, Proc]]:
    """Two Celery workers started together (each start takes seconds), stopped by PID."""
    procs = [
        Proc(name, python_argv("-m", "workers.cli", "worker", f"--hostname={name}@%h"), env, logs)
        for name in (f"one-{free_port()}", f"two-{free_port()}")
    ]
    try:
        for proc in procs:
            wait_until(lambda p=proc: " ready." in p.log(), f"{proc.name} ready", 30)  # type: ignore[misc]
        yield procs[0], procs[1]
    finally:
        for proc in procs:
            proc.stop()


def runs_on(s: Settings, job_id: uuid.UUID, worker: Proc) -> bool:
    """Whether the job's lease is held by a process of this worker's group."""
    job = load(s, job_id)
    owner = (job.lease_owner or "") if job.state == "running" else ""
    pid = int(owner.split(":")[1]) if owner.count(":") >= 2 else -1
    try:
        return os.getpgid(pid) == worker.pid
    except ProcessLookupError:
        return False


def sync_pages(s: Settings) -> int:
    with get_database(s).session() as session:
        pages = session.scalar(select(DataSync.pages).where(DataSync.resource == "items"))
        return pages or 0


def record_count(s: Settings) -> int:
    with get_database(s).session() as session:
        return int(session.scalar(select(func.count()).select_from(DataRecord)) or 0)


def test_sigkill_mid_sync_resumes_without_duplicates_or_gaps(
    own_settings: Settings, sandbox: str, logs_dir: Path
) -> None:
    # Given 2,000 records in 20 pages that take ~0.1 s each, behind a token kept as a secret
    s = own_settings
    with get_database(s).session() as session:
        key: IssuedKey = create_api_key(session, f"t-{uuid.uuid4().hex[:8]}")
    token = f"tok_{uuid.uuid4().hex}"
    set_feed(sandbox, reset=True, items=ITEMS, delay_ms=100, token=token)
    with get_database(s).session() as session:
        put_secret(session, s, key.tenant_id, "feed", token)
        put_source(
            session,
            key.tenant_id,
            "items",
            {
                "url": f"{sandbox}/data/items",
                "records_path": "data",
                "key_path": "id",
                "next_cursor_path": "meta.next_cursor",
                "page_size": PAGE,
                "max_pages": 1000,
                "auth_header": "Authorization",
                "auth_prefix": "Bearer ",
                "secret": "feed",
            },
        )
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, **RECOVERY)
    with beat_process(env, logs_dir) as beat, two_workers(env, logs_dir) as (one, two):
        # (made now: a job queued while workers start would be published by the sweeper)
        job_id = make_job(s, key.tenant_id, "data.http.pull", {"source": "items"})
        publish(producer_app(s), job_id, "data.http.pull", "data")
        # When the worker running the sync is SIGKILLed once a third of the pages are committed
        wait_until(
            lambda: sync_pages(s) >= PAGES // 3 and load(s, job_id).state == "running",
            "a third of the pages, the job running",
            30,
            poll_s=0.02,
        )
        doomed = one if runs_on(s, job_id, one) else two
        doomed_owner = load(s, job_id).lease_owner
        kill_group(doomed)
        committed_at_kill = sync_pages(s)
        records_at_kill = record_count(s)
        # and the other worker takes the job over once its lease expires
        wait_until(lambda: load(s, job_id).state == "succeeded", "the sync to finish", 60)
        logs = one.log() + two.log() + beat.log()
    # Then every record is stored once, with the content the provider serves
    with get_database(s).session() as session:
        rows = list(session.scalars(select(DataRecord).where(DataRecord.resource == "items")))
        state = session.scalars(select(DataSync)).one()
    expected = {
        f"item-{i:07d}": Record(f"item-{i:07d}", item(i, 0)).content_hash for i in range(ITEMS)
    }
    assert {row.natural_key: row.content_hash for row in rows} == expected
    # and each page was committed exactly once: the heir resumed after the last committed page
    assert PAGES // 3 <= committed_at_kill < PAGES
    assert records_at_kill == committed_at_kill * PAGE
    assert (state.pages, state.fetched, state.inserted, state.updated) == (PAGES, ITEMS, ITEMS, 0)
    # (the heir may continue over several attempts when its deadline comes first)
    outcomes = [a.outcome for a in load(s, job_id).attempt_rows if a.outcome != "duplicate"]
    rows_seen = [(a.outcome, a.worker, a.started_at) for a in load(s, job_id).attempt_rows]
    assert outcomes.count("lost") == 1 and outcomes[-1] == "succeeded", (rows_seen, doomed_owner)
    assert set(outcomes[:-1]) <= {"deferred", "lost"}
    finisher = [a.worker for a in load(s, job_id).attempt_rows if a.outcome == "succeeded"]
    assert doomed_owner is not None and finisher[0].split(":")[1] != doomed_owner.split(":")[1]
    # at most the pages in flight at the kill (the one being stored, the one fetched ahead)
    # were fetched twice
    assert PAGES <= feed_stats(sandbox)["requests"]["items"] <= PAGES + 2
    # and the secret shows in no process's log
    assert token not in logs
    keys = [row.natural_key for row in rows]
    duplicates, gaps = len(keys) - len(set(keys)), ITEMS - len(set(keys))
    assert (duplicates, gaps) == (0, 0)
    print(
        f"resume after kill ({s.database_url.split(':')[0]}): {records_at_kill} records "
        f"({committed_at_kill} of {PAGES} pages) committed before the kill, {len(rows)} after "
        f"the resume; duplicates {duplicates}, gaps {gaps}, hashes all as served; "
        f"attempts {outcomes}; {feed_stats(sandbox)['requests']['items']} page requests"
    )
    set_feed(sandbox, reset=True)
