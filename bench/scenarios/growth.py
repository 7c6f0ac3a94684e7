"""growth: one Conveyor with 10 k job rows already in its table, another with 1 M; large / small.

Each table is seeded fast (see `seed`) over 20 tenants and every state, half the rows in one
tenant. Per size and run: single-submit ingest (the `ingest` client, no worker running), an e2e
no-op drain (the `drain` machinery, a worker started for it and stopped after), and
`GET /v1/jobs?limit=50` walked by `next_cursor` through the big tenant's jobs. Sizes alternate
run by run; each run's own jobs are deleted after it, so a table keeps its seeded size. Last, the
maintenance queries and a list page as deep as the walk goes are explained against the large
table (see `plans`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis
import requests

from bench import keyspace
from bench.conveyor_stack import Api, api_process, worker_process
from bench.conveyor_store import delete_jobs, prove_consuming
from bench.databases import wal_position
from bench.jobs import NOOP_NAME
from bench.plans import explain, list_query, maintenance_plans
from bench.procs import BenchError
from bench.results import ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import Conveyor, conveyor, drop_queue, sends_per_second
from bench.scenarios.drain import conveyor_drain, drain_timeout
from bench.scenarios.e2e_noop import CONCURRENCY, POOL
from bench.scenarios.ingest import single_submits
from bench.scenarios.latency import percentiles
from bench.seed import seed_jobs
from store.keys import IssuedKey, create_api_key, ensure_tenant
from store.types import utcnow

NAME = "growth"
DEFAULT_DB = "postgresql"
DEFAULT_N = 1000
DEFAULT_ROWS_SMALL = 10_000
DEFAULT_ROWS_LARGE = 1_000_000
TENANTS = 20
PAGE_SIZE = 50
PAGES = 200
WARMUP = 20
WARMUP_PAGES = 5
WARMUP_DRAIN = 50
SLOWEST_PER_S = 20.0
JOB: tuple[str, dict[str, Any]] = (NOOP_NAME, {})
UNITS = {
    "ingest_throughput": "jobs/s",
    "ingest_server_cpu_ms_per_job": "ms",
    "ingest_wal_bytes_per_job": "B",
    "e2e_throughput": "jobs/s",
    "e2e_cpu_ms_per_job": "ms",
    "list_p50_ms": "ms",
    "list_p99_ms": "ms",
}


@dataclass(frozen=True)
class Table:
    """One size of table and the Conveyor serving it."""

    label: str
    ours: Conveyor
    api: Api
    submitter: requests.Session
    tenant: uuid.UUID  # the tenant holding half the rows, whose pages are walked
    lister: requests.Session  # carries that tenant's key
    workdir: Path
    seed_s: float


def _seed_tenants(ours: Conveyor) -> tuple[IssuedKey, list[uuid.UUID]]:
    with ours.db.session() as session:
        key = create_api_key(session, "growth-00", "bench")
        others = [ensure_tenant(session, f"growth-{i:02}").id for i in range(1, TENANTS)]
    return key, [key.tenant_id, *others]


@contextmanager
def table(opts: Options, conn: redis.Redis, rows: int) -> Iterator[Table]:
    """A fresh Conveyor whose table holds `rows` seeded jobs, its API up."""
    workdir = opts.workdir / f"rows-{rows}"
    workdir.mkdir()
    with ExitStack() as stack:
        ours = stack.enter_context(conveyor(replace(opts, workdir=workdir), conn))
        key, tenants = _seed_tenants(ours)
        say(f"{NAME}: seeding {rows:,} rows on {opts.db}")
        seed_s = seed_jobs(ours.db, tenants, rows)
        say(f"{NAME}: seeded {rows:,} rows in {seed_s:.1f}s")
        api = stack.enter_context(api_process(ours.site, workdir))
        lister = stack.enter_context(requests.Session())
        lister.headers["Authorization"] = f"Bearer {key.secret}"
        submitter = stack.enter_context(ours.http())
        label = f"{rows:,} rows"
        yield Table(label, ours, api, submitter, key.tenant_id, lister, workdir, seed_s)


def walk_pages(http: requests.Session, api_url: str, pages: int) -> list[float]:
    """Milliseconds of `pages` list requests following `next_cursor`, page 1 after the last."""
    samples = []
    cursor: str | None = None
    for _ in range(pages):
        params: dict[str, str | int] = {"limit": PAGE_SIZE}
        if cursor is not None:
            params["cursor"] = cursor
        started = time.perf_counter()
        response = http.get(f"{api_url}/v1/jobs", params=params)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise BenchError(f"GET /v1/jobs answered {response.status_code}: {response.text}")
        cursor = response.json()["next_cursor"]
    return samples


def clear(t: Table, conn: redis.Redis) -> None:
    """Drop what a run left: its queued messages and its jobs (the table back to its seed)."""
    drop_queue(conn, t.ours.site.prefix, "data")()
    delete_jobs(t.ours.db, t.ours.tenant_id)


def ingest(t: Table, conn: redis.Redis, n: int, index: int) -> dict[str, float]:
    """N single submits, no worker running; on PostgreSQL also the WAL they wrote per job."""
    submit = single_submits(t.submitter, t.api.url)
    submit(WARMUP)
    clear(t, conn)
    url = t.ours.site.database_url
    wal = [wal_position(url)]

    def after() -> None:
        wal.append(wal_position(url))
        clear(t, conn)

    sent = sends_per_second(n, submit, after, t.api.proc)(index)
    figures = {
        "ingest_throughput": sent["throughput"],
        "ingest_server_cpu_ms_per_job": sent["server_cpu_ms_per_job"],
    }
    start, end = wal
    if start is not None and end is not None:
        figures["ingest_wal_bytes_per_job"] = (end - start) / n
    return figures


def drain(t: Table, conn: redis.Redis, n: int, index: int) -> dict[str, float]:
    """A worker started for the run drains a small warm-up backlog, then N timed jobs."""
    timeout = drain_timeout(n, SLOWEST_PER_S)
    with worker_process(t.ours.site, t.workdir, POOL, CONCURRENCY) as worker:
        prove_consuming(t.ours.settings, t.ours.db, t.ours.tenant_id, worker)
        conveyor_drain(t.ours, conn, [worker], WARMUP_DRAIN, JOB, timeout)(index)
        drained = conveyor_drain(t.ours, conn, [worker], n, JOB, timeout)(index)
    clear(t, conn)
    return {
        "e2e_throughput": drained["throughput"],
        "e2e_cpu_ms_per_job": drained["cpu_ms_per_job"],
    }


def listing(t: Table) -> dict[str, float]:
    """p50 and p99 of the page walk, after a few warm-up pages."""
    walk_pages(t.lister, t.api.url, WARMUP_PAGES)
    listed = percentiles(walk_pages(t.lister, t.api.url, PAGES))
    return {"list_p50_ms": listed["p50_ms"], "list_p99_ms": listed["p99_ms"]}


def measure(t: Table, conn: redis.Redis, n: int) -> Measure:
    """A run at one size: ingest, then a drain, then the page walk."""

    def run(index: int) -> dict[str, float]:
        return ingest(t, conn, n, index) | drain(t, conn, n, index) | listing(t)

    return run


def run(opts: Options) -> ScenarioResult:
    """Seed both sizes, measure them interleaved `opts.runs` times, explain at the large size."""
    n = opts.count(DEFAULT_N)
    rows_small = opts.rows_small or DEFAULT_ROWS_SMALL
    rows_large = opts.rows_large or DEFAULT_ROWS_LARGE
    if rows_small >= rows_large:
        raise BenchError(f"--rows-small {rows_small} must be below --rows-large {rows_large}")
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        small = stack.enter_context(table(opts, conn, rows_small))
        large = stack.enter_context(table(opts, conn, rows_large))
        series = interleave(
            NAME,
            opts.runs,
            {small.label: measure(small, conn, n), large.label: measure(large, conn, n)},
            UNITS,
        )
        say(f"{NAME}: explaining the maintenance and list queries at {rows_large:,} rows")
        db = large.ours.db
        plans = [
            *maintenance_plans(db, utcnow(), large.ours.settings.republish_after_s),
            explain(db, "list_jobs", list_query(db, large.tenant, PAGES * PAGE_SIZE, PAGE_SIZE)),
        ]
        for plan in plans:
            say(f"{plan.query}: {plan.sql}\n  " + plan.plan.replace("\n", "\n  "))
    big_tenant_pages = rows_small // 2 // PAGE_SIZE
    return ScenarioResult(
        NAME,
        {
            "n": n,
            "runs": opts.runs,
            "db": opts.db,
            "rows_small": rows_small,
            "rows_large": rows_large,
            "tenants": TENANTS,
            "list": f"{PAGES} x GET /v1/jobs?limit={PAGE_SIZE}, one tenant holding half the rows",
            "worker": f"{POOL} -c {CONCURRENCY}, started per run after ingest",
        },
        series,
        [
            Target("ingest_throughput", small.label, 0.9, subject=large.label),
            Target("e2e_throughput", small.label, 0.9, subject=large.label),
            Target("list_p50_ms", small.label, 1.5, higher_is_better=False, subject=large.label),
        ],
        [
            f"seeded {small.label} in {small.seed_s:.1f}s, {large.label} in {large.seed_s:.1f}s",
            "ingest_wal_bytes_per_job (PostgreSQL): the cluster's WAL over the timed submits / N",
            f"the page walk restarts at page 1 after the last ({big_tenant_pages} pages at "
            f"{small.label}), so the small table is walked from the top more often",
            *(
                f"plan at {large.label}: {p.query}: "
                f"{'index' if p.uses_index else 'NO INDEX'}: {p.summary}"
                for p in plans
            ),
        ],
        {
            "plans": [p.as_dict() for p in plans],
            "seed_s": {small.label: small.seed_s, large.label: large.seed_s},
        },
    )
