"""e2e-noop: drain a backlog of N no-op jobs with one worker (threads pool, concurrency 8).

Conveyor's worker against a raw Celery worker with the same pool, concurrency, late acks and
prefetch 1; both drain a staged backlog released at once (see `drain`), CPU per job beside.
"""

from __future__ import annotations

from contextlib import ExitStack

from bench import keyspace
from bench.celery_baseline import SYSTEM as RAW
from bench.celery_baseline import prove_consuming as raw_prove
from bench.celery_baseline import raw_worker
from bench.conveyor_stack import worker_process
from bench.conveyor_store import prove_consuming
from bench.jobs import NOOP_NAME
from bench.raw_celery import NOOP_TASK, create_app
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Options, interleave, say
from bench.scenarios.common import conveyor, key_prefix
from bench.scenarios.drain import celery_drain, conveyor_drain, drain_timeout

NAME = "e2e-noop"
DEFAULT_N = 2000
POOL = "threads"
CONCURRENCY = 8
SLOWEST_PER_S = 20.0
UNITS = {"throughput": "jobs/s", "cpu_ms_per_job": "ms"}
TARGETS = [Target("throughput", RAW, 0.8)]


def run(opts: Options) -> ScenarioResult:
    """Measure both systems, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    timeout = drain_timeout(n, SLOWEST_PER_S)
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        ours = stack.enter_context(conveyor(opts, conn))
        raw_prefix = stack.enter_context(key_prefix(conn, "celery"))
        raw = create_app(raw_prefix)
        say(f"{NAME}: starting the workers")
        worker = stack.enter_context(worker_process(ours.site, opts.workdir, POOL, CONCURRENCY))
        raw_proc = stack.enter_context(raw_worker(raw_prefix, opts.workdir, POOL, CONCURRENCY))
        prove_consuming(ours.settings, ours.db, ours.tenant_id, worker)
        raw_prove(raw, conn, raw_prefix, raw_proc)
        systems = {
            CONVEYOR: conveyor_drain(ours, conn, [worker], n, (NOOP_NAME, {}), timeout),
            RAW: celery_drain(
                raw, conn, raw_prefix, raw_proc, n, (NOOP_TASK, lambda key: [key]), timeout
            ),
        }
        series = interleave(NAME, opts.runs, systems, UNITS)
    return ScenarioResult(
        NAME,
        {"n": n, "runs": opts.runs, "db": opts.db, "pool": POOL, "concurrency": CONCURRENCY},
        series,
        TARGETS,
        [
            "Neither worker sends task events (Conveyor's send them once Flower asks).",
            "Both workers log at WARNING.",
        ],
    )
