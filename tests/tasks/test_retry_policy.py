"""Retry behaviour of the executor against the real sandbox: permanent errors, policy, guard."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from config.settings import Settings
from integrations.base import RetryPolicy
from integrations.guard import get_guard
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job
from store.states import JobState
from store.types import utcnow
from tasks.executor import Execution, execute
from tasks.policy import effective_policy
from tests.tasks.factories import (
    CHARGE,
    RATES,
    load,
    make_due,
    make_job,
    sandbox_stats,
    script_faults,
    with_sandbox,
)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_errors_fail_after_one_attempt_and_are_never_retried(
    status: int, settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a provider rejecting the request with a client error
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    script_faults(sandbox, {"status": status})
    # When it runs
    assert execute(job_id, s) is Execution.FAILED
    # Then: failed, one attempt, a clear error naming the status, nothing scheduled
    job = load(s, job_id)
    assert job.state == JobState.FAILED and job.next_attempt_at is None
    assert job.error is not None and job.error["http_status"] == status
    assert job.error["class"] == "permanent" and job.error_class == "permanent"
    assert len(job.attempt_rows) == 1
    assert sandbox_stats(sandbox)["by_path"]["/v1/charges"] == 1


def test_per_job_max_attempts_override_is_honoured(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a job allowed a single attempt and a failing provider
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES, max_attempts=1)
    script_faults(sandbox, {"status": 503})
    # When it runs, Then it is dead at once
    assert execute(job_id, s) is Execution.DEAD


def test_job_past_its_max_age_is_dead_instead_of_waiting_again(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a job submitted two hours ago whose policy allows one hour of retrying
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    policy = effective_policy(s, RetryPolicy(), RetryPolicy(max_age_s=3600)).as_dict()
    with get_database(s).session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(retry_policy=policy, created_at=utcnow() - timedelta(hours=2))
        )
    script_faults(sandbox, {"status": 503})
    # When it fails transiently, Then it is dead, saying why
    assert execute(job_id, s) is Execution.DEAD
    job = load(s, job_id)
    assert job.error is not None and job.error["reason"] == "max_age_exceeded"


def test_open_breaker_defers_the_job_without_counting_an_attempt(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the sandbox provider's breaker is open
    s = with_sandbox(settings, sandbox)
    get_guard(s).breaker("sandbox").trip()
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    # When the job runs
    assert execute(job_id, s) is Execution.RETRYING
    # Then nothing was sent, the job waits for the breaker, and no attempt was used up
    job = load(s, job_id)
    assert sandbox_stats(sandbox)["requests"] == 0
    assert job.attempts == 0 and job.next_attempt_at is not None
    assert [(a.outcome, a.error_class) for a in job.attempt_rows] == [("deferred", "deferred")]


def test_read_timeout_after_the_charge_was_made_is_retried_with_the_same_key_one_effect(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a PSP that answers only after the client's 0.5 s read timeout
    s = with_sandbox(settings, sandbox, http_read_timeout_s=0.5)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 900}, timeout=5
    ).raise_for_status()
    # When the job runs, times out, and runs again until it succeeds
    outcomes = [execute(job_id, s)]
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 0}, timeout=5
    ).raise_for_status()
    for _ in range(10):
        if outcomes[-1] is not Execution.RETRYING:
            break
        time.sleep(0.2)  # while the first request is still in flight the PSP answers 409
        make_due(s, job_id)
        outcomes.append(execute(job_id, s))
    # Then it succeeded, every request carried one key, and the PSP made one effect
    assert outcomes[0] is Execution.RETRYING and outcomes[-1] is Execution.SUCCEEDED
    key = f"cv-{job_id}-charge"
    stats = sandbox_stats(sandbox)
    assert list(stats["keys_seen"]) == [key]
    assert stats["effects"] == {key: 1}
    assert load(s, job_id).attempt_rows[0].error_class == "unknown_outcome"


def test_attempt_rows_keep_redacted_request_and_response_excerpts(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge that the PSP throttles once with Retry-After: 4
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    script_faults(sandbox, {"status": 429, "retry_after": 4})
    # When it runs
    execute(job_id, s)
    # Then the attempt shows what was sent and answered, and the wait asked for
    [attempt] = load(s, job_id).attempt_rows
    assert attempt.retry_after_s == 4.0
    assert attempt.request_excerpt is not None and attempt.response_excerpt is not None
    assert attempt.request_excerpt.startswith("POST ") and "pm_card_visa" in attempt.request_excerpt
    assert attempt.response_excerpt.startswith("429")
    assert "sk_sandbox_local" not in attempt.request_excerpt + attempt.response_excerpt
