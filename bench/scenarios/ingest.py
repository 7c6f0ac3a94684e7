"""ingest: N single submits from one client, `POST /v1/jobs` over keep-alive HTTP vs `apply_async`.

No worker runs: this is the cost of accepting a job. Conveyor's figure includes the HTTP round
trip, validation, the committed INSERT and the publish; raw Celery's is the publish alone.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import requests

from bench import keyspace
from bench.celery_baseline import SYSTEM as RAW
from bench.celery_baseline import counter_key
from bench.conveyor_stack import api_process
from bench.jobs import NOOP_NAME
from bench.procs import BenchError
from bench.raw_celery import NOOP_TASK, QUEUE, create_app
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Options, interleave, say
from bench.scenarios.common import conveyor, drop_queue, key_prefix, sends_per_second

NAME = "ingest"
DEFAULT_N = 2000
WARMUP = 20
UNITS = {"throughput": "jobs/s", "client_cpu_ms_per_job": "ms", "server_cpu_ms_per_job": "ms"}
TARGETS = [Target("throughput", RAW, 1.0)]
BODY = {"type": NOOP_NAME, "payload": {}}


def single_submits(http: requests.Session, api_url: str) -> Callable[[int], None]:
    """`submit(count)`: that many no-op jobs, one `POST /v1/jobs` each, in sequence."""

    def submit(count: int) -> None:
        for _ in range(count):
            response = http.post(f"{api_url}/v1/jobs", json=BODY)
            if response.status_code != 202:
                raise BenchError(f"POST /v1/jobs answered {response.status_code}: {response.text}")

    return submit


def run(opts: Options) -> ScenarioResult:
    """Measure both systems, interleaved, `opts.runs` times."""
    n = opts.count(DEFAULT_N)
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        ours = stack.enter_context(conveyor(opts, conn))
        raw_prefix = stack.enter_context(key_prefix(conn, "celery"))
        say(f"{NAME}: starting the API")
        api = stack.enter_context(api_process(ours.site, opts.workdir))
        http = stack.enter_context(ours.http())
        raw_task = create_app(raw_prefix).tasks[NOOP_TASK]
        counter = counter_key(raw_prefix, "unused")

        submit = single_submits(http, api.url)

        def publish(count: int) -> None:
            for _ in range(count):
                raw_task.apply_async(args=[counter])

        drop_conveyor = drop_queue(conn, ours.site.prefix, "data")
        submit(WARMUP)
        publish(WARMUP)
        series = interleave(
            NAME,
            opts.runs,
            {
                CONVEYOR: sends_per_second(n, submit, drop_conveyor, api.proc),
                RAW: sends_per_second(n, publish, drop_queue(conn, raw_prefix, QUEUE)),
            },
            UNITS,
        )
    return ScenarioResult(
        NAME,
        {"n": n, "runs": opts.runs, "db": opts.db, "client": "requests.Session, keep-alive"},
        series,
        TARGETS,
    )
