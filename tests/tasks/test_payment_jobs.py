"""Stripe and Adyen payment jobs end to end through the executor, the ledger and the sandbox
PSP: charges, declines, lost responses, reused keys, refunds, and reconciliation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job, PaymentKey
from store.payments import ledger_for_job
from store.provider_events import record_event
from store.states import JobState
from tasks.executor import Execution, execute
from tasks.provider_events import apply_event
from tasks.reconcile import reconcile
from tests.tasks.factories import (
    load,
    make_due,
    make_job,
    sandbox_stats,
    script_faults,
    with_sandbox,
)

# Well-formed references of payments no tenant made through Conveyor.
FOREIGN = {"stripe": "pi_nope", "adyen": "NOPENOPENOPENOPE"}
TOKENS = {
    "stripe": ("pm_card_visa", "pm_card_chargeDeclined"),
    "adyen": ("stored_card_visa", "refused_card"),
}


@pytest.fixture(params=["stripe", "adyen"])
def provider(request: pytest.FixtureRequest) -> str:
    """Each test runs against both adapters."""
    name: str = request.param
    return name


@pytest.fixture
def s(settings: Settings, sandbox: str) -> Settings:
    """Settings pointing both providers at the sandbox PSP."""
    return with_sandbox(settings, sandbox)


@pytest.fixture
def client(s: Settings) -> Iterator[TestClient]:
    """The API on the same settings."""
    with TestClient(create_app(s)) as test_client:
        yield test_client


def charge(provider: str, amount: int = 1999, declined: bool = False) -> dict[str, Any]:
    good, bad = TOKENS[provider]
    return {"amount": amount, "currency": "eur", "payment_method": bad if declined else good}


def run(s: Settings, job_id: uuid.UUID, tries: int = 6) -> Execution:
    """Run a job until it stops retrying or awaiting its provider (waits pulled to now), as the
    scheduler would."""
    outcome = execute(job_id, s)
    for _ in range(tries):
        if outcome not in (Execution.RETRYING, Execution.AWAITING_PROVIDER):
            break
        make_due(s, job_id)
        outcome = execute(job_id, s)
    return outcome


def test_charge_succeeds_with_one_effect_and_one_ledger_row(
    s: Settings, tenant_key: IssuedKey, sandbox: str, provider: str
) -> None:
    # Given a charge job
    job_id = make_job(s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider))
    # When it runs
    assert run(s, job_id) is Execution.SUCCEEDED
    # Then the job holds the captured payment, the ledger one row, the PSP one effect
    job = load(s, job_id)
    assert job.result is not None and job.result["status"] == "captured"
    with get_database(s).session() as session:
        [entry] = ledger_for_job(session, job_id)
    assert (entry.operation, entry.amount, entry.currency) == ("charge", 1999, "eur")
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{job_id}-charge": 1}


def test_decline_is_failed_with_the_provider_code_after_one_attempt(
    s: Settings, tenant_key: IssuedKey, sandbox: str, provider: str
) -> None:
    # Given a charge on a card the provider refuses
    job_id = make_job(
        s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider, declined=True)
    )
    # When it runs, Then it failed with the decline code, once, with nothing in the ledger
    assert run(s, job_id) is Execution.FAILED
    job = load(s, job_id)
    assert job.error is not None and job.error["class"] == "declined"
    assert job.error["code"] and len(job.attempt_rows) == 1
    with get_database(s).session() as session:
        assert ledger_for_job(session, job_id) == []
    assert sandbox_stats(sandbox)["effects"] == {}


def test_lost_response_after_the_charge_is_retried_with_the_same_key_one_effect(
    s: Settings, tenant_key: IssuedKey, sandbox: str, provider: str
) -> None:
    # Given a PSP that charges and then drops the connection before answering
    job_id = make_job(s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider))
    script_faults(sandbox, {"reset": "after"})
    # When the job runs and retries
    assert run(s, job_id) is Execution.SUCCEEDED
    # Then the two requests carried one key and the PSP charged once
    stats = sandbox_stats(sandbox)
    key = f"cv-{job_id}-charge"
    print(f"\n{provider} lost response: keys_seen={stats['keys_seen']} effects={stats['effects']}")
    assert stats["keys_seen"] == {key: 2}
    assert stats["effects"] == {key: 1}
    assert [a.error_class for a in load(s, job_id).attempt_rows] == ["unknown_outcome", None]


def test_a_key_reused_with_other_parameters_is_a_clear_permanent_error(
    s: Settings, tenant_key: IssuedKey, provider: str
) -> None:
    # Given a first charge made under key K, and a second job whose saved key is also K
    first = make_job(s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider))
    assert run(s, first) is Execution.SUCCEEDED
    second = make_job(
        s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider, amount=777)
    )
    with get_database(s).session() as session:
        key = session.get(PaymentKey, (first, "charge"))
        assert key is not None
        # Bypass the unique (provider, key) guard the way a misconfigured second system would:
        session.add(
            PaymentKey(
                job_id=second,
                operation="charge",
                provider=f"{provider}-legacy",
                idempotency_key=key.idempotency_key,
            )
        )
    # When the second job runs, Then the provider's refusal surfaces as a permanent failure
    assert run(s, second) is Execution.FAILED
    job = load(s, second)
    assert job.error is not None and job.error["class"] == "permanent"
    assert job.error["code"] == "idempotency_key_reused"


def test_partial_then_full_refund_and_a_refund_above_captured_is_refused_at_submit(
    s: Settings, tenant_key: IssuedKey, client: TestClient, provider: str
) -> None:
    # Given a captured charge of 1999
    charge_id = make_job(s, tenant_key.tenant_id, f"payments.{provider}.charge", charge(provider))
    assert run(s, charge_id) is Execution.SUCCEEDED
    reference = load(s, charge_id).result["reference"]  # type: ignore[index]
    headers = {"Authorization": f"Bearer {tenant_key.secret}"}

    def refund(amount: int | None) -> requests.Response:
        payload: dict[str, Any] = {"reference": reference}
        if amount is not None:
            payload["amount"] = amount
        body = {"type": f"payments.{provider}.refund", "payload": payload}
        response: requests.Response = client.post("/v1/jobs", json=body, headers=headers)
        return response

    # When 500 is refunded, then the rest (no amount given)
    partial = refund(500)
    assert partial.status_code == 202, partial.text
    assert run(s, uuid.UUID(partial.json()["id"])) is Execution.SUCCEEDED
    too_much = refund(1500)
    rest = refund(None)
    assert rest.status_code == 202 and rest.json()["payload"]["amount"] == 1499
    assert run(s, uuid.UUID(rest.json()["id"])) is Execution.SUCCEEDED
    # Then 1500 > 1499 was refused at submit, and after the full refund nothing more is allowed
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "refund_exceeds_captured"
    assert refund(1).json()["error"]["code"] == "refund_exceeds_captured"
    final = load(s, uuid.UUID(rest.json()["id"]))
    assert final.result is not None and final.result["status"] == "refunded"
    # And a refund of a payment this tenant never made is refused too
    unknown = client.post(
        "/v1/jobs",
        json={"type": f"payments.{provider}.refund", "payload": {"reference": FOREIGN[provider]}},
        headers=headers,
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_payment"


def test_card_number_in_a_payment_payload_is_refused(
    client: TestClient, tenant_key: IssuedKey, provider: str
) -> None:
    body = {
        "type": f"payments.{provider}.charge",
        "payload": {"amount": 100, "currency": "eur", "payment_method": "4242 4242 4242 4242"},
    }
    response = client.post(
        "/v1/jobs", json=body, headers={"Authorization": f"Bearer {tenant_key.secret}"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"][-1] == "payment_method"
    assert "4242 4242 4242 4242" not in response.text


def test_reconciliation_adopts_a_charge_the_db_missed_and_a_second_run_changes_nothing(
    s: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a Stripe charge under review (its outcome never came back) whose key the PSP knows
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", charge("stripe", 2500))
    key = f"cv-{job_id}-charge"
    _under_review(s, job_id, "stripe", key)
    psp_holds(sandbox, 2500, key)
    # When reconciliation runs twice
    first = [f for f in reconcile(s) if f.job_id == str(job_id)]
    second = [f for f in reconcile(s) if f.job_id == str(job_id)]
    # Then the first run adopted the charge, with its ledger row, and the second did nothing
    assert [f.kind for f in first] == ["adopted_charge"]
    assert all(f.kind != "adopted_charge" for f in second)
    job = load(s, job_id)
    assert job.state == JobState.SUCCEEDED
    with get_database(s).session() as session:
        [entry] = ledger_for_job(session, job_id)
    assert entry.amount == 2500


def test_reconciliation_reports_an_amount_mismatch_and_leaves_the_job_for_a_person(
    s: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a charge of 1000 under review, and the PSP holding 900 under its key
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", charge("stripe", 1000))
    key = f"cv-{job_id}-charge"
    _under_review(s, job_id, "stripe", key)
    psp_holds(sandbox, 900, key)
    # When reconciliation runs, Then it reports the mismatch and changes nothing
    findings = [f for f in reconcile(s) if f.job_id == str(job_id)]
    assert [(f.kind, f.details) for f in findings] == [
        ("amount_mismatch", {"expected": 1000, "provider": 900})
    ]
    assert load(s, job_id).state == JobState.NEEDS_REVIEW


def test_reconciliation_fails_a_reviewed_charge_the_provider_never_made(
    s: Settings, tenant_key: IssuedKey
) -> None:
    # Given a Stripe charge under review that the PSP has no record of
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", charge("stripe"))
    _under_review(s, job_id, "stripe", f"cv-{job_id}-charge")
    # When reconciliation runs, Then it is settled as not charged
    findings = [f for f in reconcile(s) if f.job_id == str(job_id)]
    assert [f.kind for f in findings] == ["not_charged"]
    job = load(s, job_id)
    assert job.state == JobState.FAILED and job.error is not None
    assert job.error["code"] == "not_charged"


def _under_review(s: Settings, job_id: uuid.UUID, provider: str, key: str) -> None:
    with get_database(s).session() as session:
        session.add(
            PaymentKey(job_id=job_id, operation="charge", provider=provider, idempotency_key=key)
        )
        session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))


def test_a_webhook_naming_a_charge_under_review_settles_it(
    s: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a Stripe charge under review, which the PSP did make
    job_id = make_job(s, tenant_key.tenant_id, "payments.stripe.charge", charge("stripe", 3100))
    key = f"cv-{job_id}-charge"
    _under_review(s, job_id, "stripe", key)
    intent = psp_holds(sandbox, 3100, key)
    # When Stripe's payment_intent.succeeded event for it is applied
    event_id = f"evt_{uuid.uuid4().hex}"
    event: dict[str, Any] = {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent["id"], "metadata": {"conveyor_key": key}}},
    }
    row = record_event(
        get_database(s), "stripe", event_id, "payment_intent.succeeded", intent["id"], event
    )
    assert row is not None
    apply_event(s, row)
    # Then the job is settled from the provider's truth, with its ledger row
    assert load(s, job_id).state == JobState.SUCCEEDED
    with get_database(s).session() as session:
        assert [e.amount for e in ledger_for_job(session, job_id)] == [3100]


def psp_holds(sandbox: str, amount: int, key: str) -> dict[str, Any]:
    """Make the sandbox PSP hold a Stripe payment under `key` that Conveyor never saw."""
    response = requests.post(
        f"{sandbox}/_sandbox/payments",
        json={
            "provider": "stripe",
            "amount": amount,
            "currency": "eur",
            "metadata": {"conveyor_key": key},
        },
        timeout=5,
    )
    response.raise_for_status()
    payment: dict[str, Any] = response.json()
    return payment
