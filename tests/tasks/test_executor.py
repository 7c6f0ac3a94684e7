"""The executor against the real sandbox server and a real database (no Celery in between)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import structlog

from config.settings import Settings
from integrations.base import JobContext
from integrations.errors import Cancelled
from integrations.http import get_http_client
from integrations.payments.sandbox import CHARGE as CHARGE_TYPE
from store.db import get_database
from store.keys import IssuedKey
from store.lifecycle import CancelResult, cancel_job
from store.states import JobState
from store.types import utcnow
from tasks.executor import Execution, execute
from tests.support.procs import wait_until
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


def test_data_job_succeeds_with_one_attempt_and_the_provider_result(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a queued rates job
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    # When the executor runs it
    assert execute(job_id, s) is Execution.SUCCEEDED
    # Then the job holds the provider's answer and one successful attempt row
    job = load(s, job_id)
    assert job.state == JobState.SUCCEEDED
    assert job.result is not None and set(job.result["rates"]) == {"USD"}
    assert [(a.outcome, a.http_status) for a in job.attempt_rows] == [("succeeded", 200)]
    assert sandbox_stats(sandbox)["by_path"]["/v1/rates"] == 1


def test_the_log_context_of_an_attempt_is_gone_after_it(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a queued rates job, and a thread whose log context holds an earlier caller's ids
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    structlog.contextvars.bind_contextvars(job_id="earlier", correlation_id="earlier")
    # When the executor runs the job on that thread
    assert execute(job_id, s) is Execution.SUCCEEDED
    # Then nothing logged afterwards carries this job's ids (or the earlier ones)
    assert structlog.contextvars.get_contextvars() == {}


def test_charge_uses_a_key_derived_from_the_job_and_takes_effect_once(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a queued charge
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    # When it runs
    assert execute(job_id, s) is Execution.SUCCEEDED
    # Then the PSP saw one effect under the job's key, and the job stores the charge
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{job_id}-charge": 1}
    job = load(s, job_id)
    assert job.result is not None and job.result["amount"] == 1250


def test_decline_is_a_failed_result_not_retried(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge on a card the PSP declines
    s = with_sandbox(settings, sandbox)
    payload = {**CHARGE, "payment_method": "pm_card_declined"}
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", payload)
    # When it runs
    assert execute(job_id, s) is Execution.FAILED
    # Then it failed with the provider's code, after one attempt, with no effect
    job = load(s, job_id)
    assert job.state == JobState.FAILED and job.next_attempt_at is None
    assert job.error is not None and job.error["code"] == "card_declined"
    assert len(job.attempt_rows) == 1
    assert sandbox_stats(sandbox)["effects"] == {}


def test_provider_503_schedules_a_retry_in_the_database(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the provider will answer 503 once
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    script_faults(sandbox, {"status": 503})
    before = utcnow()
    # When the job runs
    assert execute(job_id, s) is Execution.RETRYING
    # Then it waits in the DB for its next attempt, with a transient attempt row
    job = load(s, job_id)
    assert job.state == JobState.RETRYING
    assert job.next_attempt_at is not None and job.next_attempt_at >= before
    [attempt] = job.attempt_rows
    assert (attempt.outcome, attempt.http_status, attempt.error_class) == (
        "retry",
        503,
        "transient",
    )


def test_retry_after_header_sets_next_attempt(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the provider throttles with Retry-After: 3
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    script_faults(sandbox, {"status": 429, "retry_after": 3})
    before = utcnow()
    # When the job runs
    execute(job_id, s)
    # Then the next attempt is no sooner than the provider asked
    job = load(s, job_id)
    assert job.next_attempt_at is not None
    assert job.next_attempt_at >= before + timedelta(seconds=3)
    assert job.attempt_rows[0].error_class == "rate_limited"


def test_permanent_error_fails_without_retry(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the provider rejects the request with 400
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    script_faults(sandbox, {"status": 400})
    # When it runs, Then the job fails for good
    assert execute(job_id, s) is Execution.FAILED
    job = load(s, job_id)
    assert job.state == JobState.FAILED and job.error is not None
    assert job.error["class"] == "permanent"


def test_job_is_dead_when_retries_are_exhausted(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a job allowed two attempts and a provider failing twice
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES, max_attempts=2)
    script_faults(sandbox, {"status": 502}, {"status": 502})
    # When both attempts run
    assert execute(job_id, s) is Execution.RETRYING
    make_due(s, job_id)
    assert execute(job_id, s) is Execution.DEAD
    # Then the job is dead with two attempt rows and says why
    job = load(s, job_id)
    assert job.state == JobState.DEAD
    assert job.error is not None and job.error["reason"] == "retries_exhausted"
    assert [a.number for a in job.attempt_rows] == [1, 2]


def test_duplicate_delivery_of_a_finished_job_does_nothing(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge that already ran
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    execute(job_id, s)
    # When its message is delivered again
    outcome = execute(job_id, s)
    # Then the second delivery leaves without calling the provider, and says so in a row
    assert outcome is Execution.NOT_CLAIMED
    assert sandbox_stats(sandbox)["by_path"]["/v1/charges"] == 1
    job = load(s, job_id)
    assert job.state == "succeeded" and job.attempts == 1
    assert [a.outcome for a in job.attempt_rows] == ["succeeded", "duplicate"]


def test_lost_response_after_charge_is_retried_with_the_same_key_one_effect(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the PSP commits the charge but the response is lost
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    script_faults(sandbox, {"reset": "after"})
    # When the job runs, then runs again when due
    assert execute(job_id, s) is Execution.RETRYING
    make_due(s, job_id)
    assert execute(job_id, s) is Execution.SUCCEEDED
    # Then both requests carried one key and the PSP made exactly one effect
    stats = sandbox_stats(sandbox)
    key = f"cv-{job_id}-charge"
    assert stats["keys_seen"] == {key: 2}
    assert stats["effects"] == {key: 1}
    job = load(s, job_id)
    assert [a.error_class for a in job.attempt_rows] == ["unknown_outcome", None]


def test_cancel_requested_while_running_stops_the_job_instead_of_retrying(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a job whose provider call will take a second and then fail with 503
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    script_faults(sandbox, {"status": 503, "delay_ms": 1000})
    outcome: list[Execution] = []
    worker = threading.Thread(target=lambda: outcome.append(execute(job_id, s)))
    worker.start()
    wait_until(lambda: load(s, job_id).state == JobState.RUNNING, "the job to be claimed")
    # When a cancel is requested while it runs
    with get_database(s).session() as session:
        assert cancel_job(session, job_id, tenant_key.tenant_id, utcnow()) is CancelResult.REQUESTED
    worker.join(timeout=10)
    # Then at the end of the attempt the job is cancelled, and the error says why
    assert outcome == [Execution.CANCELLED]
    job = load(s, job_id)
    assert job.state == JobState.CANCELLED and job.next_attempt_at is None
    assert job.error is not None and job.error["code"] == "cancelled"
    assert job.error["last_error"]["http_status"] == 503


def test_cancel_requested_before_a_charge_checkpoint_makes_no_call(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a claimed charge whose cancel is already requested when the handler starts
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    ctx = JobContext(
        job_id=job_id, attempt=1, settings=s, http=get_http_client(s), cancel_requested=lambda: True
    )
    # When the handler runs, Then it stops at the checkpoint before charging
    with pytest.raises(Cancelled):
        CHARGE_TYPE.run(CHARGE, ctx)
    assert sandbox_stats(sandbox)["requests"] == 0
