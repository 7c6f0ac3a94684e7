"""ingest-batch: `POST /v1/jobs/batch`, 500 jobs a request, vs one `apply_async` / `send` per job.

No worker runs. Conveyor commits each batch in one transaction and publishes it over one producer
connection; the baselines have no batch submit, so they publish one message per call.
"""

from __future__ import annotations

from contextlib import ExitStack

from bench import dramatiq_app, keyspace
from bench.celery_baseline import SYSTEM as RAW
from bench.celery_baseline import counter_key
from bench.conveyor_stack import api_process
from bench.dramatiq_baseline import NOT_INSTALLED
from bench.dramatiq_baseline import SYSTEM as DRAMATIQ
from bench.dramatiq_baseline import keys as dramatiq_keys
from bench.jobs import NOOP_NAME
from bench.procs import BenchError
from bench.raw_celery import NOOP_TASK, QUEUE, create_app
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import conveyor, drop_queue, key_prefix, sends_per_second

NAME = "ingest-batch"
DEFAULT_N = 2000
BATCH = 500
WARMUP = 20
UNITS = {"throughput": "jobs/s", "client_cpu_ms_per_job": "ms", "server_cpu_ms_per_job": "ms"}
TARGETS = [Target("throughput", RAW, 3.0), Target("throughput", DRAMATIQ, 1.0)]
JOB = {"type": NOOP_NAME, "payload": {}}


def run(opts: Options) -> ScenarioResult:
    """Measure the systems, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    notes: list[str] = []
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        ours = stack.enter_context(conveyor(opts, conn))
        raw_prefix = stack.enter_context(key_prefix(conn, "celery"))
        say(f"{NAME}: starting the API")
        api = stack.enter_context(api_process(ours.site, opts.workdir))
        http = stack.enter_context(ours.http())
        raw_task = create_app(raw_prefix).tasks[NOOP_TASK]
        raw_counter = counter_key(raw_prefix, "unused")

        def submit(count: int) -> None:
            for start in range(0, count, BATCH):
                jobs = [JOB] * min(BATCH, count - start)
                response = http.post(f"{api.url}/v1/jobs/batch", json={"jobs": jobs})
                if response.status_code != 202 or len(response.json()["jobs"]) != len(jobs):
                    answer = f"{response.status_code}: {response.text[:500]}"
                    raise BenchError(f"POST /v1/jobs/batch answered {answer}")

        def publish(count: int) -> None:
            for _ in range(count):
                raw_task.apply_async(args=[raw_counter])

        drop_conveyor = drop_queue(conn, ours.site.prefix, "data")
        systems: dict[str, Measure] = {
            CONVEYOR: sends_per_second(n, submit, drop_conveyor, api.proc),
            RAW: sends_per_second(n, publish, drop_queue(conn, raw_prefix, QUEUE)),
        }
        submit(WARMUP)
        publish(WARMUP)
        if dramatiq_app.available():
            namespace = stack.enter_context(key_prefix(conn, "dramatiq")).rstrip(":")
            actor = dramatiq_app.declare(dramatiq_app.create_broker(namespace)).noop
            counter, started = dramatiq_keys(namespace, "unused")

            def send(count: int) -> None:
                for _ in range(count):
                    actor.send(counter, started)

            def drop_dramatiq() -> None:
                keyspace.delete_prefixed(conn, f"{namespace}:")

            send(WARMUP)
            systems[DRAMATIQ] = sends_per_second(n, send, drop_dramatiq)
        else:
            say(NOT_INSTALLED)
            notes.append(NOT_INSTALLED)
        series = interleave(NAME, opts.runs, systems, UNITS)
    return ScenarioResult(
        NAME,
        {"n": n, "runs": opts.runs, "db": opts.db, "batch": BATCH},
        series,
        TARGETS,
        notes,
    )
