"""e2e-io: drain N `data.sandbox.fetch_rates` jobs against the sandbox answering in 50 ms.

Conveyor runs two worker processes, one per core as a deployment on this machine would, each
with the threads pool at concurrency 32 (DB pool sized to match); raw Celery runs its default
prefork pool with `-c 2` (two processes) and a task making the same GET with requests; Dramatiq
runs its CLI defaults (2 processes x 8 threads). How each is timed: see `drain`.
"""

from __future__ import annotations

from contextlib import ExitStack

from bench import dramatiq_app, keyspace
from bench.celery_baseline import SYSTEM as RAW
from bench.celery_baseline import prove_consuming as raw_prove
from bench.celery_baseline import raw_worker
from bench.conveyor_stack import sandbox_process, worker_process
from bench.conveyor_store import prove_consuming, prove_listening
from bench.dramatiq_baseline import NOT_INSTALLED, dramatiq_worker
from bench.dramatiq_baseline import SYSTEM as DRAMATIQ
from bench.dramatiq_baseline import prove_consuming as dramatiq_prove
from bench.raw_celery import FETCH_TASK, create_app
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import conveyor, key_prefix
from bench.scenarios.drain import celery_drain, conveyor_drain, drain_timeout, dramatiq_drain
from integrations.data.sandbox import FETCH_RATES
from integrations.sandbox.server import DEFAULT_API_KEY

NAME = "e2e-io"
# Raw Celery prefork -c 2 tops out near 2 / 50 ms = 40 jobs/s: 400 jobs take it ~10 s a run.
DEFAULT_N = 400
LATENCY_MS = 50
PROCESSES = 2
CONCURRENCY = 32
RAW_POOL, RAW_CONCURRENCY = "prefork", 2
SLOWEST_PER_S = 10.0
UNITS = {"throughput": "jobs/s", "cpu_ms_per_job": "ms"}
TARGETS = [Target("throughput", RAW, 10.0), Target("throughput", DRAMATIQ, 2.0)]
PAYLOAD = {"base": "EUR"}


def run(opts: Options) -> ScenarioResult:
    """Measure the systems, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    timeout = drain_timeout(n, SLOWEST_PER_S)
    notes: list[str] = []
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        sandbox = stack.enter_context(sandbox_process(opts.workdir, LATENCY_MS))
        rates_url = f"{sandbox}/v1/rates"
        extra = {"db_pool_size": str(CONCURRENCY)}
        ours = stack.enter_context(conveyor(opts, conn, sandbox, extra))
        raw_prefix = stack.enter_context(key_prefix(conn, "celery"))
        raw = create_app(raw_prefix)
        say(f"{NAME}: starting the workers")
        workers = [
            stack.enter_context(worker_process(ours.site, opts.workdir, "threads", CONCURRENCY))
            for _ in range(PROCESSES)
        ]
        raw_proc = stack.enter_context(
            raw_worker(raw_prefix, opts.workdir, RAW_POOL, RAW_CONCURRENCY)
        )
        prove_listening(ours.settings, workers)
        prove_consuming(ours.settings, ours.db, ours.tenant_id, workers[0])
        raw_prove(raw, conn, raw_prefix, raw_proc)

        systems: dict[str, Measure] = {
            CONVEYOR: conveyor_drain(ours, conn, workers, n, (FETCH_RATES.name, PAYLOAD), timeout),
            RAW: celery_drain(
                raw,
                conn,
                raw_prefix,
                raw_proc,
                n,
                (FETCH_TASK, lambda key: [rates_url, DEFAULT_API_KEY, key]),
                timeout,
            ),
        }
        if dramatiq_app.available():
            namespace = stack.enter_context(key_prefix(conn, "dramatiq")).rstrip(":")
            actors = dramatiq_app.declare(dramatiq_app.create_broker(namespace))
            dq_proc = stack.enter_context(dramatiq_worker(namespace, opts.workdir))
            dramatiq_prove(actors, conn, namespace, dq_proc)

            def send(counter: str, started_key: str) -> None:
                actors.fetch.send(rates_url, DEFAULT_API_KEY, counter, started_key)

            systems[DRAMATIQ] = dramatiq_drain(send, conn, namespace, dq_proc, n, timeout)
        else:
            say(NOT_INSTALLED)
            notes.append(NOT_INSTALLED)
        series = interleave(NAME, opts.runs, systems, UNITS)
    return ScenarioResult(
        NAME,
        {
            "n": n,
            "runs": opts.runs,
            "db": opts.db,
            "sandbox_latency_ms": LATENCY_MS,
            "conveyor": f"{PROCESSES} processes x threads -c {CONCURRENCY}, DB pool {CONCURRENCY}",
            "raw_celery": f"{RAW_POOL} -c {RAW_CONCURRENCY}",
            "dramatiq": "CLI defaults (2 processes x 8 threads)",
        },
        series,
        TARGETS,
        notes,
    )
