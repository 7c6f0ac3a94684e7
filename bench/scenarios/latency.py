"""latency: one client, sequentially: submit, wait for the terminal state, next; p50 and p99.

Conveyor: `POST /v1/jobs?wait=10`, submit and wait in one request (the API subscribes to the
job's end notice before publishing it; the worker's pub/sub notice wakes it), a no-op job,
worker threads -c 8. (`GET /v1/jobs/{id}?wait=` is the same wait for a job submitted earlier.)
Raw Celery: `apply_async().get()` through a Redis result backend, which only this baseline app
has.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

from bench import keyspace
from bench.celery_baseline import SYSTEM as RAW
from bench.celery_baseline import prove_consuming as raw_prove
from bench.celery_baseline import raw_worker
from bench.conveyor_stack import api_process, worker_process
from bench.conveyor_store import prove_consuming
from bench.jobs import NOOP_NAME
from bench.procs import BenchError
from bench.raw_celery import ECHO_TASK, create_app
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import conveyor, key_prefix

NAME = "latency"
DEFAULT_N = 300
WARMUP = 10
POOL = "threads"
CONCURRENCY = 8
WAIT_S = 10
UNITS = {"p50_ms": "ms", "p99_ms": "ms"}
TARGETS = [
    Target("p50_ms", RAW, 1.5, higher_is_better=False),
    Target("p99_ms", RAW, 2.0, higher_is_better=False),
]
BODY = {"type": NOOP_NAME, "payload": {}}


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p99 of one run's round trips."""
    if len(samples_ms) == 1:
        return {"p50_ms": samples_ms[0], "p99_ms": samples_ms[0]}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50_ms": cuts[49], "p99_ms": cuts[98]}


def round_trips(n: int, once: Callable[[], None]) -> Measure:
    """A run of N sequential round trips of `once`, timed one by one."""

    def measure(_run: int) -> dict[str, float]:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            once()
            samples.append((time.perf_counter() - started) * 1000)
        return percentiles(samples)

    return measure


def run(opts: Options) -> ScenarioResult:
    """Measure both systems, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        ours = stack.enter_context(conveyor(opts, conn))
        raw_prefix = stack.enter_context(key_prefix(conn, "celery"))
        raw = create_app(raw_prefix, results=True)
        say(f"{NAME}: starting the API and the workers")
        api = stack.enter_context(api_process(ours.site, opts.workdir))
        worker = stack.enter_context(worker_process(ours.site, opts.workdir, POOL, CONCURRENCY))
        raw_proc = stack.enter_context(
            raw_worker(raw_prefix, opts.workdir, POOL, CONCURRENCY, results=True)
        )
        prove_consuming(ours.settings, ours.db, ours.tenant_id, worker)
        raw_prove(raw, conn, raw_prefix, raw_proc)
        http = stack.enter_context(ours.http())
        echo = raw.tasks[ECHO_TASK]

        def conveyor_once() -> None:
            answer = http.post(f"{api.url}/v1/jobs", params={"wait": WAIT_S}, json=BODY)
            if answer.status_code != 200:
                raise BenchError(f"POST /v1/jobs?wait answered {answer.status_code}")
            job = answer.json()
            if job["state"] != "succeeded":
                raise BenchError(f"job {job['id']} was {job['state']} after waiting {WAIT_S}s")

        def raw_once() -> None:
            result = echo.apply_async().get(timeout=WAIT_S)
            if result != {"ok": True}:
                raise BenchError(f"the echo task returned {result!r}")

        for _ in range(WARMUP):
            conveyor_once()
            raw_once()
        series = interleave(
            NAME,
            opts.runs,
            {CONVEYOR: round_trips(n, conveyor_once), RAW: round_trips(n, raw_once)},
            UNITS,
        )
    return ScenarioResult(
        NAME,
        {"n": n, "runs": opts.runs, "db": opts.db, "pool": POOL, "concurrency": CONCURRENCY},
        series,
        TARGETS,
        ["Dramatiq is not measured here: it needs its Results middleware for an equivalent."],
    )
