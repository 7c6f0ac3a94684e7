"""Health that means consuming: `/readyz` and `conveyor status` name each queue's live consumers
(a busy worker with jobs waiting is still `consuming`), and a worker killed with `kill -9` while
jobs wait makes its queues not ready within the heartbeat's expiry (3 heartbeat intervals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from tests.e2e.stack import api_process, stack_env, start_worker
from tests.support.procs import ROOT, wait_until
from tests.tasks.factories import script_faults

pytestmark = pytest.mark.e2e

HEARTBEAT_S = 0.5
EXPIRY_S = 3 * HEARTBEAT_S
# Generous: the expiry plus a loaded machine's scheduling and one readiness probe.
NOT_READY_WITHIN_S = EXPIRY_S + 10.0
RATES_JOB = {"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR"}}
QUEUES = ("payments", "data", "webhooks", "maintenance")
# Long enough that the worker's one slot is still busy when it is killed.
SLOW_ANSWER_MS = 20_000


def _state(api: str, headers: dict[str, str], job_id: str) -> str:
    found = requests.get(f"{api}/v1/jobs/{job_id}", headers=headers, timeout=10)
    return str(found.json()["state"])


def _ready(api: str) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"{api}/readyz", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def _status(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": settings.database_url,
        "CONVEYOR_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "CONVEYOR_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_worker_killed_while_jobs_wait_makes_its_queues_not_ready_within_the_expiry(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    env = stack_env(
        fresh_settings.database_url,
        fresh_settings.broker_key_prefix,
        sandbox,
        worker_heartbeat_s=str(HEARTBEAT_S),
    )
    headers = {"Authorization": f"Bearer {key.secret}"}
    with api_process(env, logs_dir) as api:
        worker = start_worker(env, logs_dir, "heartbeat", ["--concurrency=1"])
        try:
            # Given a running worker: ready, listed as the consumer of every queue
            def consumed_everywhere() -> bool:
                code, body = _ready(api)
                queues = body.get("queues", {})
                return code == 200 and all(queues.get(q, {}).get("consumers") for q in QUEUES)

            wait_until(consumed_everywhere, "/readyz to list the worker on every queue", 30)
            # ...which takes and runs a job
            job = requests.post(f"{api}/v1/jobs", json=RATES_JOB, headers=headers, timeout=10)
            job_id = job.json()["id"]

            def succeeded() -> bool:
                return _state(api, headers, job_id) == "succeeded"

            wait_until(succeeded, "the first job to succeed", 60)
            wait_until(
                lambda: _ready(api)[1]["queues"]["data"]["last_consumed_s_ago"] is not None,
                "/readyz to show when the data queue was last consumed",
                10,
            )
            # ...then holds its one slot on a slow provider answer while five more jobs wait
            script_faults(sandbox, {"delay_ms": SLOW_ANSWER_MS})
            slow = requests.post(f"{api}/v1/jobs", json=RATES_JOB, headers=headers, timeout=10)
            slow_id = slow.json()["id"]
            wait_until(
                lambda: _state(api, headers, slow_id) == "running", "the slow job to start", 30
            )
            for _ in range(5):
                answer = requests.post(
                    f"{api}/v1/jobs", json=RATES_JOB, headers=headers, timeout=10
                )
                assert answer.status_code == 202, answer.text
            code, before = _ready(api)
            running = _status(fresh_settings)
            # When the worker is killed with SIGKILL (no goodbye) while those five wait
            os.kill(worker.pid, signal.SIGKILL)
            killed = time.monotonic()

            def not_ready() -> bool:
                code, body = _ready(api)
                return code == 503 and body["queues"]["data"]["verdict"] == "no_consumer"

            wait_until(not_ready, "/readyz to say the data queue has no consumer", 30)
            took = time.monotonic() - killed
            code_after, after = _ready(api)
            stopped = _status(fresh_settings)
        finally:
            worker.stop()
    # Then before the kill: ready, the busy worker consuming every queue, five jobs waiting
    assert code == 200 and before["status"] == "ready", before
    assert before["checks"] == {"database": "ok", "broker": "ok", "consumers": "ok"}
    data = before["queues"]["data"]
    assert (data["verdict"], data["queued"], len(data["consumers"])) == ("consuming", 5, 1), data
    assert data["last_consumed_s_ago"] < 30
    assert running.returncode == 0, running.stdout + running.stderr
    assert "live consumers: heartbeat-" in running.stdout
    # ...and after it: not ready within the heartbeat expiry (plus slack), naming the queue
    assert took < NOT_READY_WITHIN_S, took
    assert code_after == 503 and after["status"] == "unavailable"
    assert after["checks"]["consumers"].startswith("unavailable: "), after["checks"]
    assert "data: no_consumer" in after["checks"]["consumers"]
    assert after["queues"]["data"]["queued"] == 5 and after["queues"]["data"]["consumers"] == []
    assert after["checks"]["database"] == after["checks"]["broker"] == "ok"
    # ...and `conveyor status` says which queue has no consumer, exiting 1
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "NOT READY: queue data has 5 queued job(s) and no live consumer" in stopped.stdout
    assert "live consumers: none" in stopped.stdout
    print(f"not ready {took:.2f} s after kill -9 (heartbeat {HEARTBEAT_S} s, expiry {EXPIRY_S} s)")
