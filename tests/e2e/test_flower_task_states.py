"""Flower tells a job's story: a job that fails shows FAILURE with its error class, one that is
rescheduled shows RETRY; the job's own states in the database are unchanged by it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from tasks.publish import producer_app, publish
from tests.e2e.stack import stack_env, worker_process
from tests.support.broker import purge
from tests.support.procs import Proc, free_port, http_ok, python_argv, wait_until
from tests.tasks.factories import CHARGE, load, make_job, script_faults

pytestmark = pytest.mark.e2e
CHARGE_TYPE = "payments.sandbox.charge"
AUTH = ("ops", "s3cret, pass")


def _ran(settings: Settings, job_id: uuid.UUID) -> Callable[[], bool]:
    return lambda: bool(load(settings, job_id).state != "queued")


def test_failed_and_rescheduled_jobs_show_as_failure_and_retry_in_flower(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a worker and Flower on this test's broker prefix
    env = {
        **stack_env(settings.database_url, settings.broker_key_prefix, sandbox),
        "CONVEYOR_FLOWER_USER": AUTH[0],
        "CONVEYOR_FLOWER_PASSWORD": AUTH[1],
        "CONVEYOR_BACKOFF_BASE_S": "30",
        "CONVEYOR_BACKOFF_CAP_S": "60",
    }
    port = free_port()
    flower = Proc(
        "flower-states",
        python_argv("-m", "workers.cli", "flower", "--port", str(port)),
        env,
        logs_dir,
    )
    url = f"http://127.0.0.1:{port}"
    jobs: dict[str, list[uuid.UUID]] = {"400": [], "503": []}
    try:
        wait_until(http_ok(f"{url}/healthcheck"), f"Flower on port {port}", 60, [flower])
        with worker_process(env, logs_dir, "flower-states"):
            last = 0.0

            def states_seen() -> bool:
                # When charges meet a 400 (permanent) and a 503 (retried later), one pair every
                # second until Flower, which switches the worker's events on, has listed both
                nonlocal last
                if time.monotonic() - last > 1.0:
                    for status in ("400", "503"):
                        script_faults(sandbox, {"status": int(status)})
                        job_id = make_job(settings, tenant_key.tenant_id, CHARGE_TYPE, CHARGE)
                        publish(producer_app(settings), job_id, CHARGE_TYPE, "payments")
                        jobs[status].append(job_id)
                        wait_until(_ran(settings, job_id), "the charge to run", 30)
                    last = time.monotonic()
                tasks = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
                states = {t.get("state") for t in tasks.values() if t.get("name") == CHARGE_TYPE}
                return {"FAILURE", "RETRY"} <= states

            wait_until(states_seen, "Flower to list a FAILURE and a RETRY charge", 90)
            tasks = requests.get(f"{url}/api/tasks", auth=AUTH, timeout=10).json()
            # ...and one charge waits in the payments queue with no worker taking it
            purge(settings, "payments")
            job_id = make_job(settings, tenant_key.tenant_id, CHARGE_TYPE, CHARGE)
        publish(producer_app(settings), job_id, CHARGE_TYPE, "payments")
        broker_page = requests.get(f"{url}/broker", auth=AUTH, timeout=10)
        lengths = requests.get(f"{url}/api/queues/length", auth=AUTH, timeout=10).json()
    finally:
        flower.stop()
    # Then the Broker page lists every Conveyor queue with its length
    assert broker_page.status_code == 200, broker_page.text[:500]
    for queue in ("payments", "data", "webhooks", "maintenance"):
        assert queue in broker_page.text
    assert {"name": "payments", "messages": 1} in lengths["active_queues"], lengths
    # ...the failed task names the job's end and error class
    failures = [t for t in tasks.values() if t.get("state") == "FAILURE"]
    assert any("failed: permanent" in str(t.get("exception")) for t in failures), failures
    # ...and the jobs themselves ended as they always did (none redelivered, none stuck
    # running): each failed, waits for its retry (no beat runs to publish it), or succeeded
    # (a scripted fault may be taken by another request to the sandbox)
    states = [load(settings, j).state for j in jobs["400"] + jobs["503"]]
    assert {"failed", "retrying"} <= set(states) <= {"failed", "retrying", "succeeded"}, states
