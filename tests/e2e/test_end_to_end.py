"""Submit over HTTP, a real Celery worker runs the integration, the result lands in the DB."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from tests.e2e.stack import api_process, stack_env, worker_process
from tests.support.procs import Proc, python_argv, wait_until
from tests.tasks.factories import load, sandbox_stats

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "dead", "cancelled", "needs_review"}


def _wait_terminal(api: str, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(requests.get(f"{api}/v1/jobs/{job_id}", headers=headers, timeout=5).json())
        return seen.get("state") in TERMINAL

    wait_until(done, f"job {job_id} to reach a terminal state", timeout=30)
    return seen


def test_jobs_submitted_over_http_succeed_through_a_real_worker(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, broker_prefix: str, logs_dir: Path
) -> None:
    # Given the API and a Celery worker running as their own processes
    env = stack_env(settings.database_url, settings.broker_key_prefix, sandbox)
    headers = {"Authorization": f"Bearer {tenant_key.secret}"}
    with api_process(env, logs_dir) as api, worker_process(env, logs_dir):
        # When a data job and a charge are submitted over HTTP
        submitted = {}
        for job_type, payload in [
            ("data.sandbox.fetch_rates", {"base": "GBP", "symbols": ["EUR"]}),
            (
                "payments.sandbox.charge",
                {"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa"},
            ),
        ]:
            response = requests.post(
                f"{api}/v1/jobs",
                json={"type": job_type, "payload": payload},
                headers=headers,
                timeout=5,
            )
            assert response.status_code == 202, response.text
            submitted[job_type] = response.json()["id"]
        finals = {t: _wait_terminal(api, headers, i) for t, i in submitted.items()}
    # Then both succeeded, each with exactly one attempt row in the database
    for job_type, job_id in submitted.items():
        assert finals[job_type]["state"] == "succeeded", finals[job_type]
        row = load(settings, uuid.UUID(job_id))
        assert row.state == "succeeded"
        assert [a.outcome for a in row.attempt_rows] == ["succeeded"]
    # And the PSP took exactly one effect, under the key derived from the job
    charge_id = submitted["payments.sandbox.charge"]
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{charge_id}-charge": 1}
    assert finals["data.sandbox.fetch_rates"]["result"]["base"] == "GBP"


def test_transient_provider_error_is_retried_after_a_wait_kept_in_the_database(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, broker_prefix: str, logs_dir: Path
) -> None:
    # Given the provider fails once with 503, and a worker plus beat are running
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [{"status": 503}]}, timeout=5
    ).raise_for_status()
    env = stack_env(settings.database_url, settings.broker_key_prefix, sandbox)
    headers = {"Authorization": f"Bearer {tenant_key.secret}"}
    beat = Proc(
        "beat",
        python_argv("-m", "workers.cli", "beat", f"--schedule={logs_dir / 'beat-schedule'}"),
        env,
        logs_dir,
    )
    try:
        with api_process(env, logs_dir) as api, worker_process(env, logs_dir):
            # When a job is submitted
            response = requests.post(
                f"{api}/v1/jobs",
                json={"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR"}},
                headers=headers,
                timeout=5,
            )
            job = _wait_terminal(api, headers, response.json()["id"])
    finally:
        beat.stop()
    # Then it succeeded on the second attempt, the wait having lived in the DB
    assert job["state"] == "succeeded"
    assert [a["outcome"] for a in job["attempt_history"]] == ["retry", "succeeded"]
    assert job["attempt_history"][0]["http_status"] == 503
