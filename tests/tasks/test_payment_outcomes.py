"""Every provider answer lands as the right typed outcome, and money moves at most once.

Issue cases: pending booked as done (3), over-refund race (2), another tenant's payment (11),
references pasted into URLs (12), retries past key retention (1). Real sandbox PSP, real
SQLite and PostgreSQL, the executor as a worker runs it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.app import create_app
from config.settings import Settings
from integrations.breaker import BreakerState
from integrations.guard import get_guard
from integrations.outcome import LedgerEffect
from store.db import get_database
from store.jobs import NewJob, submit_job
from store.keys import IssuedKey
from store.models import Attempt, AuditEvent, Job, LedgerEntry, PaymentHold, PaymentKey
from store.payment_claims import PaymentClaim, PaymentRefused
from store.payments import LedgerInvariantBroken, ledger_for_job, record_effects
from store.provider_events import record_event
from store.states import JobState
from store.types import utcnow
from tasks.executor import Execution, execute
from tasks.provider_events import apply_event
from tests.tasks.factories import (
    load,
    make_due,
    make_job,
    sandbox_stats,
    script_faults,
    with_sandbox,
)

OPERATIONS = ("capture", "void", "refund")


@pytest.fixture
def s(settings: Settings, sandbox: str) -> Settings:
    """Settings pointing both providers at the sandbox PSP."""
    return with_sandbox(settings, sandbox)


@pytest.fixture
def client(s: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s)) as test_client:
        yield test_client


def headers(key: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


def charged(s: Settings, tenant_id: uuid.UUID, provider: str, amount: int = 1000) -> str:
    """A captured charge of the tenant's; its provider reference."""
    token = "pm_card_visa" if provider == "stripe" else "stored_card_visa"
    payload = {"amount": amount, "currency": "eur", "payment_method": token}
    job_id = make_job(s, tenant_id, f"payments.{provider}.charge", payload)
    assert execute(job_id, s) is Execution.SUCCEEDED
    result = load(s, job_id).result
    assert result is not None
    return str(result["reference"])


def ledger_rows(s: Settings) -> int:
    with get_database(s).session() as session:
        return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def job_count(s: Settings) -> int:
    with get_database(s).session() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_processing_payment_intent_awaits_the_provider_and_is_booked_when_it_settles(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a charge Stripe answers `processing`
    payload = {"amount": 1500, "currency": "eur", "payment_method": "pm_card_processing"}
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", payload)

    # When it runs
    first = execute(job_id, s)

    # Then it awaits the provider, with no ledger row and a poll scheduled
    job = load(s, job_id)
    assert first is Execution.AWAITING_PROVIDER
    assert job.state == JobState.AWAITING_PROVIDER.value and job.next_attempt_at is not None
    assert ledger_for_job_rows(s, job_id) == []

    # When the provider has settled (the sandbox settles `processing` after a second) and the
    # poll comes due
    wait_s = 1.2
    threading.Event().wait(wait_s)
    make_due(s, job_id)
    second = execute(job_id, s)

    # Then the charge is booked once, with the provider's amount and currency
    assert second is Execution.SUCCEEDED
    assert ledger_for_job_rows(s, job_id) == [("charge", 1500, "eur")]
    assert sandbox_stats(s.sandbox_url)["effects"] == {f"cv-{job_id}-charge": 1}


def ledger_for_job_rows(s: Settings, job_id: uuid.UUID) -> list[tuple[str, int, str]]:
    with get_database(s).session() as session:
        return [(e.operation, e.amount, e.currency) for e in ledger_for_job(session, job_id)]


@pytest.mark.parametrize(
    "method", ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required"]
)
def test_a_payment_that_requires_customer_action_fails_with_a_clear_code(
    s: Settings, tenant_key: IssuedKey, method: str
) -> None:
    # Given a charge Stripe answers `requires_action`
    payload = {"amount": 900, "currency": "eur", "payment_method": method}
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", payload)

    # When it runs
    assert execute(job_id, s) is Execution.FAILED

    # Then it failed as action_required, nothing booked
    job = load(s, job_id)
    assert job.error is not None and job.error["class"] == "action_required"
    assert job.error_class == "action_required"
    assert ledger_for_job_rows(s, job_id) == []


def test_an_adyen_refund_received_awaits_and_is_booked_with_the_providers_amount(
    s: Settings, tenant_key: IssuedKey, client: TestClient
) -> None:
    # Given a captured Adyen payment of 1000
    reference = charged(s, tenant_key.tenant_id, "adyen")

    # When 400 of it is refunded: Adyen answers `received`
    body = {"type": "payments.adyen.refund", "payload": {"reference": reference, "amount": 400}}
    response = client.post("/v1/jobs", json=body, headers=headers(tenant_key))
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    first = execute(job_id, s)

    # Then the job awaits the provider and books nothing yet
    assert first is Execution.AWAITING_PROVIDER
    assert ledger_for_job_rows(s, job_id) == []

    # When the poll comes due (the sandbox applied it; real Adyen would send REFUND)
    make_due(s, job_id)
    assert execute(job_id, s) is Execution.SUCCEEDED

    # Then one refund row, amount and currency as the provider echoed them; the hold released
    assert ledger_for_job_rows(s, job_id) == [("refund", 400, "eur")]
    with get_database(s).session() as session:
        hold = session.get(PaymentHold, job_id)
        assert hold is not None and hold.released_at is not None


def test_an_adyen_webhook_that_refuses_a_pending_refund_fails_it_and_frees_its_hold(
    s: Settings, tenant_key: IssuedKey, client: TestClient
) -> None:
    # Given an Adyen refund awaiting its provider
    reference = charged(s, tenant_key.tenant_id, "adyen")
    body = {"type": "payments.adyen.refund", "payload": {"reference": reference, "amount": 1000}}
    job_id = uuid.UUID(client.post("/v1/jobs", json=body, headers=headers(tenant_key)).json()["id"])
    assert execute(job_id, s) is Execution.AWAITING_PROVIDER
    pending = load(s, job_id).result
    assert pending is not None

    # When Adyen's REFUND notification says success=false for that modification
    item = {
        "eventCode": "REFUND",
        "success": "false",
        "pspReference": pending["operation_reference"],
        "originalReference": reference,
        "reason": "Insufficient balance on the merchant account",
        "amount": {"value": 1000, "currency": "EUR"},
    }
    db = get_database(s)
    record_event(
        db, "adyen", f"{pending['operation_reference']}:REFUND:false", "REFUND", reference, item
    )
    make_due(s, job_id)

    # Then the refund failed, nothing booked, and the whole amount is refundable again
    assert execute(job_id, s) is Execution.FAILED
    assert ledger_for_job_rows(s, job_id) == []
    again = client.post("/v1/jobs", json=body, headers=headers(tenant_key))
    assert again.status_code == 202, again.text


def test_a_pending_payment_past_the_awaiting_deadline_goes_to_review(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a processing charge and a 1-second awaiting deadline with a requires_action that
    # never settles (a PaymentIntent that stays `processing` would do the same)
    quick = s.model_copy(update={"awaiting_provider_max_s": 0.5})
    payload = {"amount": 700, "currency": "eur", "payment_method": "pm_card_processing"}
    job_id = make_job(quick, tenant_key.tenant_id, "payments.stripe.charge", payload)
    assert execute(job_id, quick) is Execution.AWAITING_PROVIDER
    with get_database(quick).session() as session:
        # the provider answered pending long ago
        job = session.get(Job, job_id)
        assert job is not None and job.result is not None
        old = (utcnow() - timedelta(hours=1)).isoformat()
        session.execute(
            update(Job).where(Job.id == job_id).values(result={**job.result, "pending_since": old})
        )
    # When the next poll finds it still unsettled (before the sandbox's one second)
    make_due(quick, job_id)
    assert execute(job_id, quick) is Execution.NEEDS_REVIEW

    # Then it is under review for an awaiting timeout
    job = load(quick, job_id)
    assert job.error is not None and job.error["class"] == "awaiting_timeout"


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_tenants_payment_is_unknown_for_every_operation(
    s: Settings,
    tenant_key: IssuedKey,
    other_tenant_key: IssuedKey,
    client: TestClient,
    provider: str,
    operation: str,
) -> None:
    # Given tenant A's captured payment
    reference = charged(s, tenant_key.tenant_id, provider)
    before = job_count(s)

    # When tenant B captures, voids or refunds it
    body = {"type": f"payments.{provider}.{operation}", "payload": {"reference": reference}}
    response = client.post("/v1/jobs", json=body, headers=headers(other_tenant_key))

    # Then 422 unknown_payment, nothing written, and the reference is not echoed
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_payment"
    assert error["details"]["loc"][-1] == "reference"
    assert reference not in response.text
    assert job_count(s) == before


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
@pytest.mark.parametrize(
    "suffix", ["/cancel?x=", "/../../refunds?amount=1", "#frag", " ", "%2F", "\n"]
)
def test_a_reference_that_is_not_the_providers_id_format_is_refused_at_submit(
    s: Settings, tenant_key: IssuedKey, client: TestClient, provider: str, suffix: str
) -> None:
    # Given tenant A's own payment, and a reference with a path or query smuggled onto it
    reference = charged(s, tenant_key.tenant_id, provider) + suffix
    before = job_count(s)

    # When it is captured with that reference
    body = {"type": f"payments.{provider}.capture", "payload": {"reference": reference}}
    response = client.post("/v1/jobs", json=body, headers=headers(tenant_key))

    # Then it is refused before anything is written
    assert response.status_code == 422, response.text
    assert job_count(s) == before


def _refund(s: Settings, tenant_id: uuid.UUID, reference: str, amount: int) -> NewJob:
    payload = {"reference": reference, "amount": amount}
    return NewJob(
        tenant_id=tenant_id,
        type="payments.adyen.refund",
        queue="payments",
        payload=payload,
        request_hash=uuid.uuid4().hex,
        max_attempts=5,
        claim=PaymentClaim("adyen", "refund", reference, amount, None),
    )


def test_two_refunds_submitted_at_once_cannot_both_pass_the_balance(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a 1,000 charge and two refunds of 700 submitted at the same moment
    reference = charged(s, tenant_key.tenant_id, "adyen")
    db = get_database(s)
    start = threading.Barrier(2)
    outcomes: list[Any] = []

    def submit() -> None:
        start.wait()
        try:
            outcomes.append(submit_job(db, _refund(s, tenant_key.tenant_id, reference, 700))[1])
        except PaymentRefused as exc:
            outcomes.append(exc)

    # When both run
    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one is accepted, the other refused with what remains
    refused = [o for o in outcomes if isinstance(o, PaymentRefused)]
    assert outcomes.count(True) == 1 and len(refused) == 1
    assert refused[0].code == "refund_exceeds_captured"
    assert refused[0].details == {"refundable": 300, "currency": "eur"}
    with db.session() as session:
        held = session.scalar(select(func.sum(PaymentHold.amount)))
    assert held == 700


def test_the_ledger_refuses_refunds_beyond_the_captured_amount(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a 1,000 charge already refunded 700 in the ledger
    reference = charged(s, tenant_key.tenant_id, "stripe")
    db = get_database(s)
    first = make_job(s, tenant_key.tenant_id, "payments.stripe.refund", {"reference": reference})
    second = make_job(s, tenant_key.tenant_id, "payments.stripe.refund", {"reference": reference})
    with db.session() as session:
        effect = LedgerEffect("refund", "re_1", reference, 700, "eur")
        record_effects(session, first, tenant_key.tenant_id, "stripe", [effect])

    # When a second refund of 700 is written
    # Then the ledger's invariant refuses it and nothing is kept
    with pytest.raises(LedgerInvariantBroken), db.session() as session:
        effect = LedgerEffect("refund", "re_2", reference, 700, "eur")
        record_effects(session, second, tenant_key.tenant_id, "stripe", [effect])
    with db.session() as session:
        refunded = session.scalar(
            select(func.sum(LedgerEntry.amount)).where(LedgerEntry.operation == "refund")
        )
    assert refunded == 700


def _age_keys(s: Settings, job_id: uuid.UUID, age: timedelta) -> None:
    with get_database(s).session() as session:
        session.execute(
            update(PaymentKey).where(PaymentKey.job_id == job_id).values(created_at=utcnow() - age)
        )


def test_a_stripe_retry_past_key_retention_looks_the_payment_up_and_adopts_it(
    s: Settings, tenant_key: IssuedKey, client: TestClient, sandbox: str
) -> None:
    # Given a charge whose answer was lost (connection reset after the PSP charged)
    payload = {"amount": 2500, "currency": "eur", "payment_method": "pm_card_visa"}
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", payload)
    script_faults(sandbox, {"reset": "after"})
    assert execute(job_id, s) is Execution.RETRYING
    # ... left under review, and its key now older than Stripe keeps keys
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))
    _age_keys(s, job_id, timedelta(hours=25))

    # When an operator retries it
    response = client.post(f"/v1/jobs/{job_id}/retry", headers=headers(tenant_key))
    assert response.status_code == 202, response.text
    make_due(s, job_id)
    assert execute(job_id, s) is Execution.SUCCEEDED

    # Then the worker found the payment by its key and adopted it: one effect, one ledger row
    stats = sandbox_stats(sandbox)
    assert stats["effects"] == {f"cv-{job_id}-charge": 1}
    assert stats["keys_seen"] == {f"cv-{job_id}-charge": 1}
    assert [row[0] for row in ledger_for_job_rows(s, job_id)] == ["charge"]


def test_an_adyen_retry_past_key_retention_is_refused_unless_forced_and_audited(
    s: Settings, tenant_key: IssuedKey, client: TestClient, sandbox: str
) -> None:
    # Given an Adyen charge whose answer was lost, under review, its key past 7 days
    payload = {"amount": 2500, "currency": "eur", "payment_method": "stored_card_visa"}
    job_id = make_job(s, tenant_key.tenant_id, "payments.adyen.charge", payload)
    script_faults(sandbox, {"reset": "after"})
    assert execute(job_id, s) is Execution.RETRYING
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))
    _age_keys(s, job_id, timedelta(days=8))

    # When it is retried without force, and replayed by filter
    refused = client.post(f"/v1/jobs/{job_id}/retry", headers=headers(tenant_key))
    replay = client.post(
        "/v1/jobs/replay",
        json={"filter": {"states": ["needs_review"]}},
        headers=headers(tenant_key),
    )

    # Then both leave it alone: 409 outcome_unknown, and the replay withholds it
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "outcome_unknown"
    assert replay.json()["withheld"] == [str(job_id)] and replay.json()["replayed"] == 0
    assert load(s, job_id).state == "needs_review"

    # When an operator forces it
    forced = client.post(
        f"/v1/jobs/{job_id}/retry", json={"force": True}, headers=headers(tenant_key)
    )

    # Then it is queued and the force is audited
    assert forced.status_code == 202, forced.text
    with get_database(s).session() as session:
        details = session.scalars(
            select(AuditEvent.details).where(AuditEvent.job_id == job_id)
        ).all()
    assert {"force": True} in details


def test_the_providers_webhook_makes_an_awaiting_jobs_poll_due_at_once(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a charge awaiting Stripe, its next poll a minute away
    payload = {"amount": 1200, "currency": "eur", "payment_method": "pm_card_processing"}
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", payload)
    assert execute(job_id, s) is Execution.AWAITING_PROVIDER
    job = load(s, job_id)
    assert job.result is not None and job.next_attempt_at is not None
    assert job.next_attempt_at > utcnow() + timedelta(seconds=30)

    # When Stripe's payment_intent.succeeded for that PaymentIntent is applied
    reference = str(job.result["reference"])
    event = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": reference}},
    }
    event_row = record_event(
        get_database(s), "stripe", "evt_1", "payment_intent.succeeded", reference, event
    )
    assert event_row is not None
    apply_event(s, event_row)

    # Then its poll is due now, and the due-job publisher will queue it within a second
    assert load(s, job_id).next_attempt_at <= utcnow()  # type: ignore[operator]


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_a_2xx_the_adapter_cannot_read_goes_to_review_and_is_never_sent_again(
    s: Settings, tenant_key: IssuedKey, sandbox: str, provider: str
) -> None:
    # Given a charge the provider performs but answers with a body of a shape nobody expects
    token = "pm_card_visa" if provider == "stripe" else "stored_card_visa"
    payload = {"amount": 1300, "currency": "eur", "payment_method": token}
    job_id = make_job(s, tenant_key.tenant_id, f"payments.{provider}.charge", payload)
    script_faults(sandbox, {"odd_body": True})

    # When it runs
    outcome = execute(job_id, s)

    # Then money may have moved: review, not a retry; the excerpt shows what came back
    assert outcome is Execution.NEEDS_REVIEW
    job = load(s, job_id)
    assert job.error is not None
    assert (job.error["class"], job.error["code"]) == ("unknown_outcome", "unreadable_answer")
    with get_database(s).session() as session:
        attempt = session.scalars(select(Attempt).where(Attempt.job_id == job_id)).one()
    assert attempt.response_excerpt is not None and "200" in attempt.response_excerpt
    stats = sandbox_stats(sandbox)
    assert stats["keys_seen"] == {f"cv-{job_id}-charge": 1}
    assert stats["effects"] == {f"cv-{job_id}-charge": 1}
    assert ledger_for_job_rows(s, job_id) == []


def test_a_dripping_answer_ends_the_attempt_at_its_deadline_as_an_unknown_outcome(
    s: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a 2 s attempt deadline, a 1.5 s read timeout and a provider that sends its answer
    # one byte every 0.5 s (each read succeeds, the whole never ends in time)
    quick = s.model_copy(update={"attempt_deadline_s": 2.0, "http_read_timeout_s": 1.5})
    payload = {"amount": 1100, "currency": "eur", "payment_method": "pm_card_visa"}
    job_id = make_job(quick, tenant_key.tenant_id, "payments.stripe.charge", payload)
    script_faults(sandbox, {"drip_ms": 500})

    # When it runs
    started = time.monotonic()
    outcome = execute(job_id, quick)
    took_s = time.monotonic() - started

    # Then the attempt ended within its deadline plus a second, as an unknown outcome retried
    # with the same key
    assert took_s < 3.0, took_s
    assert outcome is Execution.RETRYING
    job = load(quick, job_id)
    assert job.error is not None
    assert (job.error["class"], job.error["code"]) == ("unknown_outcome", "timeout")


def test_our_own_deadline_passing_before_sending_never_opens_the_providers_breaker(
    s: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given an attempt deadline so short it passes before any request leaves, and a breaker
    # that opens after 2 provider failures
    starved = s.model_copy(update={"attempt_deadline_s": 1e-6, "breaker_failure_threshold": 2})
    payload = {"amount": 500, "currency": "eur", "payment_method": "pm_card_visa"}
    job_id = make_job(starved, tenant_key.tenant_id, "payments.stripe.charge", payload)

    # When it runs until its attempts are spent (a counted breaker would defer the third)
    outcomes = [execute(job_id, starved)]
    while outcomes[-1] is Execution.RETRYING and len(outcomes) < 10:
        make_due(starved, job_id)
        outcomes.append(execute(job_id, starved))
    assert outcomes[-1] is Execution.DEAD and len(outcomes) >= 3
    assert set(outcomes[:-1]) == {Execution.RETRYING}

    # Then the provider never saw a request and its breaker stayed closed
    assert sandbox_stats(sandbox)["keys_seen"] == {}
    assert get_guard(starved).breaker("stripe").state() is BreakerState.CLOSED
    job = load(starved, job_id)
    assert job.error is not None and job.error["code"] == "deadline"
