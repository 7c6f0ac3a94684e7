"""data-sync: N records (default 100,000) in pages of 100 from the sandbox's JSON feed, stored.

Conveyor runs one `data.http.pull` job on one worker process: per page, one upsert statement
that unpacks the page from one JSON parameter (`INSERT … SELECT … FROM json_each /
json_to_recordset … ON CONFLICT DO UPDATE … RETURNING`) and the cursor's move, in one
transaction, while the next page is fetched. The baseline is the bare minimum: a `requests`
loop and one `executemany` INSERT plus COMMIT per page into a plain table on the same database,
no hashes, no cursor, no counts. DB round trips per page (every statement, BEGIN and COMMIT,
from SQLAlchemy's events) are counted in this process on a probe sync through the same executor
code the worker runs: the slope between a 10-page and a 20-page sync, so the job's own claim
and finish are left out.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg
import requests
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import event

from bench import keyspace
from bench.conveyor_stack import sandbox_process, worker_process
from bench.conveyor_store import insert_jobs, prove_consuming, publish_ids, terminal_count
from bench.databases import libpq
from bench.procs import BenchError, wait_until
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import Conveyor, conveyor
from config.settings import Settings
from integrations.sandbox.feed_state import DEFAULT_TOKEN
from store.db import get_database, reset_database
from store.models import Job
from store.secrets import put_secret
from store.sources import put_source
from tasks.executor import execute

NAME = "data-sync"
BASELINE = "requests+executemany"
DEFAULT_N = 100_000
PAGE = 100
PULL = "data.http.pull"
UNITS = {"records_per_s": "records/s", "seconds": "s", "db_round_trips_per_page": "trips"}
TARGETS = [Target("records_per_s", BASELINE, 0.5)]
SLOWEST_RECORDS_PER_S = 500.0
PROBE_PAGES = (10, 20)


def _source(sandbox: str, pages: int) -> dict[str, Any]:
    return {
        "url": f"{sandbox}/data/items",
        "records_path": "data",
        "key_path": "id",
        "next_cursor_path": "meta.next_cursor",
        "page_size": PAGE,
        "max_pages": pages,
        "auth_header": "Authorization",
        "auth_prefix": "Bearer ",
        "secret": "feed",
    }


def _configure(settings: Settings, ours: Conveyor, name: str, sandbox: str, pages: int) -> None:
    with ours.db.session() as session:
        put_secret(session, settings, ours.tenant_id, "feed", DEFAULT_TOKEN)
        put_source(session, ours.tenant_id, name, _source(sandbox, pages))


def _set_items(sandbox: str, n: int) -> None:
    response = requests.post(
        f"{sandbox}/_sandbox/data", json={"reset": True, "items": n}, timeout=10
    )
    response.raise_for_status()


def conveyor_sync(ours: Conveyor, settings: Settings, sandbox: str, n: int) -> Measure:
    """One pull job of n records on the worker, timed from publish to its terminal state."""
    pages = -(-n // PAGE)
    timeout = n / SLOWEST_RECORDS_PER_S + 60

    def measure(run: int) -> dict[str, float]:
        name = f"bench-{run}"
        _configure(settings, ours, name, sandbox, pages + 1)
        before = terminal_count(ours.db, ours.tenant_id)
        ids = insert_jobs(ours.db, ours.tenant_id, PULL, {"source": name}, 1)
        started = time.perf_counter()
        publish_ids(settings, ids, PULL)
        wait_until(lambda: terminal_count(ours.db, ours.tenant_id) > before, f"{name}", timeout)
        elapsed = time.perf_counter() - started
        with ours.db.session() as session:
            job = session.get(Job, ids[0])
            if job is None or job.state != "succeeded" or (job.result or {}).get("inserted") != n:
                raise BenchError(f"the sync did not store {n} records: {job and job.result}")
        return {"records_per_s": n / elapsed, "seconds": elapsed}

    return measure


def round_trips_per_page(ours: Conveyor, settings: Settings, sandbox: str) -> float:
    """Every statement, BEGIN and COMMIT the worker's code sends, per page.

    Counted in this process on two probe syncs through the executor; the slope between them
    leaves out what a run does once (claim, begin, finish, the cancellation check).
    """
    reset_database()
    db = get_database(settings)
    seen = {"trips": 0}

    def trip(*_: Any) -> None:
        seen["trips"] += 1

    events = ("before_cursor_execute", "begin", "commit")
    for name in events:
        event.listen(db.engine, name, trip)
    trips = []
    try:
        for pages in PROBE_PAGES:
            name = f"probe-{pages}"
            _configure(settings, ours, name, sandbox, pages)
            job_id = insert_jobs(ours.db, ours.tenant_id, PULL, {"source": name}, 1)[0]
            seen["trips"] = 0
            execute(job_id, settings)
            trips.append(seen["trips"])
    finally:
        for name in events:
            event.remove(db.engine, name, trip)
    return (trips[1] - trips[0]) / (PROBE_PAGES[1] - PROBE_PAGES[0])


def baseline_sync(url: str, sandbox: str, n: int) -> Measure:
    """The same pages with a bare requests loop, one executemany + COMMIT per page."""
    pages = -(-n // PAGE)
    sqlite = url.startswith("sqlite")
    insert = (
        "INSERT INTO baseline_records (key, data) VALUES (?, ?)"
        if sqlite
        else "INSERT INTO baseline_records (key, data) VALUES (%s, %s)"
    )

    def connect() -> Any:
        if sqlite:
            conn = sqlite3.connect(url.split("///", 1)[1])
            conn.execute("PRAGMA journal_mode=WAL")
            return conn
        return psycopg.connect(libpq(url))

    def measure(_run: int) -> dict[str, float]:
        conn = connect()
        conn.execute("DROP TABLE IF EXISTS baseline_records")
        conn.execute("CREATE TABLE baseline_records (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
        conn.commit()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {DEFAULT_TOKEN}"
        started = time.perf_counter()
        cursor: str | None = None
        stored = 0
        for _ in range(pages):
            params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            body = http.get(f"{sandbox}/data/items", params=params, timeout=10).json()
            rows = [(item["id"], json.dumps(item)) for item in body["data"]]
            conn.cursor().executemany(insert, rows)
            conn.commit()
            stored += len(rows)
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                break
        elapsed = time.perf_counter() - started
        http.close()
        conn.close()
        if stored != n:
            raise BenchError(f"the baseline stored {stored} of {n}")
        return {"records_per_s": n / elapsed, "seconds": elapsed, "db_round_trips_per_page": 3.0}

    return measure


def run(opts: Options) -> ScenarioResult:
    """Measure both, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    key = Fernet.generate_key().decode()
    extra = {
        "data_secret_key": key,
        "outbound_allow_loopback": "true",
        "attempt_deadline_s": "900",
        "lease_s": "960",
    }
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        sandbox = stack.enter_context(sandbox_process(opts.workdir))
        ours = stack.enter_context(conveyor(opts, conn, sandbox, extra))
        settings = ours.settings.model_copy(
            update={
                "data_secret_key": SecretStr(key),
                "outbound_allow_loopback": True,
                "attempt_deadline_s": 900.0,
                "lease_s": 960,
            }
        )
        _set_items(sandbox, PAGE * PROBE_PAGES[1])
        trips = round_trips_per_page(ours, settings, sandbox)
        say(f"{NAME}: {trips:g} DB round trips per page (statements, BEGIN and COMMIT)")
        _set_items(sandbox, n)
        say(f"{NAME}: starting the worker")
        worker = stack.enter_context(worker_process(ours.site, opts.workdir, "threads", 4, **extra))
        prove_consuming(settings, ours.db, ours.tenant_id, worker)
        ours_measure = conveyor_sync(ours, settings, sandbox, n)

        def with_trips(run_: int) -> dict[str, float]:
            return {**ours_measure(run_), "db_round_trips_per_page": trips}

        systems: dict[str, Callable[[int], dict[str, float]]] = {
            CONVEYOR: with_trips,
            BASELINE: baseline_sync(ours.settings.database_url, sandbox, n),
        }
        series = interleave(NAME, opts.runs, systems, UNITS)
    return ScenarioResult(
        NAME,
        {
            "n": n,
            "page_size": PAGE,
            "pages": -(-n // PAGE),
            "runs": opts.runs,
            "db": opts.db,
            "conveyor": "one worker process (threads), one data.http.pull job",
            "baseline": "requests.Session loop, executemany INSERT + COMMIT per page",
        },
        series,
        TARGETS,
    )
