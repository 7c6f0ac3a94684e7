"""Payment jobs in the executor: keys saved before the first call, a ledger row per effect,
and no blind retry once the provider's key retention has passed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import LedgerEntry, PaymentKey
from store.payments import job_keys, ledger_for_job
from store.states import JobState
from store.types import utcnow
from tasks.executor import Execution, execute
from tests.tasks.factories import (
    CHARGE,
    load,
    make_due,
    make_job,
    sandbox_stats,
    script_faults,
    with_sandbox,
)


def test_key_is_saved_before_the_first_call_even_when_the_call_fails(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge whose first call is answered 503
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    script_faults(sandbox, {"status": 503})
    # When it runs once
    assert execute(job_id, s) is Execution.RETRYING
    # Then the key it sent is on record, and it is the key the next attempt sends
    with get_database(s).session() as session:
        assert job_keys(session, job_id) == {"charge": f"cv-{job_id}-charge"}


def test_saved_key_wins_over_a_freshly_derived_one(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge whose saved key differs from what would be derived today
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    with get_database(s).session() as session:
        session.add(
            PaymentKey(job_id=job_id, operation="charge", provider="sandbox", idempotency_key="k-1")
        )
    # When it runs
    execute(job_id, s)
    # Then the PSP saw the saved key (I5: one key per operation for its whole life)
    assert sandbox_stats(sandbox)["effects"] == {"k-1": 1}


def test_successful_charge_writes_one_ledger_row(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge, When it succeeds
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    assert execute(job_id, s) is Execution.SUCCEEDED
    # Then the ledger holds exactly that effect
    with get_database(s).session() as session:
        [entry] = ledger_for_job(session, job_id)
    assert (entry.operation, entry.amount, entry.currency) == ("charge", 1250, "eur")
    assert entry.provider == "sandbox" and entry.provider_reference.startswith("ch_")


def test_a_second_effect_for_one_operation_sends_the_job_to_review(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given the ledger already holds a charge for this job's charge operation
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    with get_database(s).session() as session:
        session.add(
            LedgerEntry(
                job_id=job_id,
                tenant_id=tenant_key.tenant_id,
                provider="sandbox",
                operation="charge",
                provider_reference="ch_earlier",
                payment_reference="ch_earlier",
                amount=1250,
                currency="eur",
            )
        )
    # When the job runs and the PSP reports a (new) charge
    assert execute(job_id, s) is Execution.NEEDS_REVIEW
    # Then the second effect is not recorded silently: the job waits for a person
    job = load(s, job_id)
    assert job.error is not None and job.error["code"] == "duplicate_effect"
    assert job.error["result"]["reference"].startswith("ch_")
    with get_database(s).session() as session:
        assert [e.provider_reference for e in ledger_for_job(session, job_id)] == ["ch_earlier"]


def test_unknown_outcome_after_the_key_retention_goes_to_review_not_retry(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge whose response was lost, first tried 25 hours ago (Stripe keeps keys 24 h)
    s = with_sandbox(settings, sandbox)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    script_faults(sandbox, {"reset": "before"})
    assert execute(job_id, s) is Execution.RETRYING
    with get_database(s).session() as session:
        session.execute(
            update(PaymentKey)
            .where(PaymentKey.job_id == job_id)
            .values(created_at=utcnow() - timedelta(hours=25))
        )
    make_due(s, job_id)
    script_faults(sandbox, {"reset": "before"})
    # When the retry is lost too
    outcome = execute(job_id, s)
    # Then the job is not retried blindly: it waits for reconciliation
    assert outcome is Execution.NEEDS_REVIEW
    job = load(s, job_id)
    assert job.state == JobState.NEEDS_REVIEW
    assert job.error is not None and job.error["reason"] == "key_retention_passed"
