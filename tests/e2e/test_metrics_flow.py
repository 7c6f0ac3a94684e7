"""Metrics and logs during a real run: the worker's endpoint counts attempts and deferrals, the
API's counts the backlog, its age, live consumers and breakers as jobs flow and a provider fails,
and the request's correlation id reaches the worker's attempt log lines."""

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
from tests.e2e.stack import api_process, beat_process, stack_env, worker_process
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


def test_backlog_age_consumer_and_breaker_series_move_as_jobs_flow_and_a_provider_fails(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given the API and (later) a worker and beat, each serving metrics behind the token
    port = free_port()
    env = stack_env(
        fresh_settings.database_url,
        fresh_settings.broker_key_prefix,
        sandbox,
        metrics_token=TOKEN,
        worker_metrics_port=str(port),
        worker_heartbeat_s="0.5",
        breaker_failure_threshold="3",
        breaker_open_s="30",
    )
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    headers = {"Authorization": f"Bearer {key.secret}"}
    job = {"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR"}}

    def submit(count: int) -> list[str]:
        answers = [
            requests.post(f"{api}/v1/jobs", json=job, headers=headers, timeout=10)
            for _ in range(count)
        ]
        assert {a.status_code for a in answers} == {202}
        return [a.json()["id"] for a in answers]

    def states(ids: list[str]) -> set[str]:
        return {
            requests.get(f"{api}/v1/jobs/{i}", headers=headers, timeout=10).json()["state"]
            for i in ids
        }

    with api_process(env, logs_dir) as api:

        def scrape_api() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(requests.get(f"{api}/metrics", headers=bearer, timeout=10).text)

        def scrape_worker() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            url = f"http://127.0.0.1:{port}/metrics"
            return samples(requests.get(url, headers=bearer, timeout=10).text)

        # When six jobs are submitted while no worker runs
        first = submit(6)
        wait_until(lambda: scrape_api()[OLDEST] > 0.5, "the oldest queued job to age", 30)
        waiting = scrape_api()
        with beat_process(env, logs_dir), worker_process(env, logs_dir, "flowing") as worker:
            # ...then a worker drains them
            wait_until(lambda: states(first) == {"succeeded"}, "the six to succeed", 60, [worker])
            wait_until(
                lambda: LAST_CONSUMED in scrape_api(),
                "the worker's heartbeat to say when it last took a message",
                30,
                [worker],
            )
            drained, flowed = scrape_api(), scrape_worker()
            # ...and then the provider goes down while six more jobs come
            requests.post(
                f"{sandbox}/_sandbox/faults",
                json={"script": [], "outage": {"status": 503, "seconds": 120}},
                timeout=5,
            ).raise_for_status()
            second = submit(6)
            wait_until(lambda: scrape_api()[BREAKER_OPEN] == 1, "the breaker to open", 60)
            wait_until(
                lambda: scrape_worker().get(DEFERRED_BY_BREAKER, 0) >= 1,
                "a job to be deferred by the open breaker",
                60,
                [worker],
            )
            down, failing = scrape_api(), scrape_worker()
            assert states(second) <= {"queued", "running", "retrying"}
    # Then the backlog and its age showed the six waiting, with no consumer
    assert waiting[QUEUED] == 6 and waiting[IN_BROKER] == 6 and waiting[OLDEST] > 0.5
    assert waiting[CONSUMERS] == 0
    # ...drained by one live consumer, which counted six successful attempts
    assert drained[QUEUED] == 0 and drained[IN_BROKER] == 0 and drained[OLDEST] == 0
    assert drained[CONSUMERS] == 1 and drained[LAST_CONSUMED] < 30
    assert drained[BREAKER_OPEN] == 0 and drained[BREAKER_CLOSED] == 1
    assert flowed[attempts("succeeded")] == 6
    # ...and the outage shows: the breaker open, failed attempts retried, then deferrals
    assert down[BREAKER_OPEN] == 1 and down[BREAKER_CLOSED] == 0
    assert failing[attempts("retry")] >= 3
    assert failing[DEFERRED_BY_BREAKER] >= 1
    waits = sum(down[("conveyor_queue_jobs", (("queue", "data"), ("state", s)))] for s in WAITS)
    assert waits >= 1


def attempts(outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The sample key of the sandbox data attempts that ended with `outcome`."""
    labels = (("outcome", outcome), ("provider", "sandbox"), ("queue", "data"))
    return ("conveyor_attempt_duration_seconds_count", labels)


DATA = (("queue", "data"),)
QUEUED = ("conveyor_queue_jobs", (("queue", "data"), ("state", "queued")))
WAITS = ("queued", "due", "scheduled", "running")
IN_BROKER = ("conveyor_broker_queue_length", DATA)
OLDEST = ("conveyor_queue_oldest_age_seconds", DATA)
CONSUMERS = ("conveyor_queue_consumers", DATA)
LAST_CONSUMED = ("conveyor_queue_last_consumed_seconds", DATA)
BREAKER_OPEN = ("conveyor_breaker_state", (("provider", "sandbox"), ("state", "open")))
BREAKER_CLOSED = ("conveyor_breaker_state", (("provider", "sandbox"), ("state", "closed")))
DEFERRED_BY_BREAKER = (
    "conveyor_provider_deferrals_total",
    (("cause", "breaker_open"), ("provider", "sandbox")),
)
