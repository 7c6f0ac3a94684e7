"""Metrics and logs during a real run: the worker's endpoint counts attempts, the API's counts
the backlog, and the request's correlation id reaches the worker's attempt log lines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.app import create_app
from config.settings import Settings
from store.keys import IssuedKey
from tests.e2e.stack import stack_env, worker_process
from tests.support.procs import free_port, wait_until

pytestmark = pytest.mark.e2e
TOKEN = "e2e-metrics-token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} of a Prometheus text page."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_job_moves_the_worker_and_api_metrics_and_carries_its_request_id(
    fresh_settings: Settings,
    key: IssuedKey,
    sandbox: str,
    logs_dir: Path,
    tmp_path: Path,
    pool: str,
) -> None:
    # Given a worker serving its metrics (prefork: children write prometheus-client's
    # multiprocess files, the endpoint sums them), and the API, both with a metrics token
    port = free_port()
    env = stack_env(
        fresh_settings.database_url,
        fresh_settings.broker_key_prefix,
        sandbox,
        metrics_token=TOKEN,
        worker_metrics_port=str(port),
    )
    extra: list[str] = []
    if pool == "prefork":
        (tmp_path / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
        extra = ["--pool=prefork", "--concurrency=2"]
    settings = fresh_settings.model_copy(
        update={"metrics_token": SecretStr(TOKEN), "sandbox_url": sandbox}
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings)) as api:
        # When a job is submitted with a request id while no worker runs
        submitted = api.post(
            "/v1/jobs",
            json={"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR"}},
            headers={"Authorization": f"Bearer {key.secret}", "X-Request-ID": "trace-me-42"},
        )
        job_id = submitted.json()["id"]
        backlog = samples(api.get("/metrics", headers=bearer).text)
        # ...and then a worker comes up and runs it
        with worker_process(env, logs_dir, f"metered-{pool}", extra) as worker:
            url = f"http://127.0.0.1:{port}/metrics"

            def finished() -> bool:
                body = api.get(
                    f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key.secret}"}
                )
                return bool(body.json()["state"] == "succeeded")

            wait_until(finished, "the job to succeed", 60, [worker])
            anonymous = requests.get(url, timeout=5)
            scraped = samples(requests.get(url, headers=bearer, timeout=5).text)
            time.sleep(0.2)
            log = worker.log()
        after = samples(api.get("/metrics", headers=bearer).text)
    # Then the API counted it waiting, and no longer does
    queued = ("conveyor_queue_jobs", (("queue", "data"), ("state", "queued")))
    assert backlog[queued] == 1 and after[queued] == 0
    # ...the worker's endpoint is closed without the token and counts the attempt and the end
    assert anonymous.status_code == 401
    attempts = (
        "conveyor_attempt_duration_seconds_count",
        (("outcome", "succeeded"), ("provider", "sandbox"), ("queue", "data")),
    )
    assert scraped[attempts] == 1
    finished_key = (
        "conveyor_jobs_finished_total",
        (
            ("state", "succeeded"),
            ("tenant", str(key.tenant_id)),
            ("type", "data.sandbox.fetch_rates"),
        ),
    )
    assert scraped[finished_key] == 1
    # ...and the worker's attempt log line carries the request's correlation id
    attempt_lines = [line for line in log.splitlines() if "job.attempt_finished" in line]
    assert attempt_lines and all("trace-me-42" in line for line in attempt_lines), log[-2000:]
