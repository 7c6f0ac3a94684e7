"""A refund's hold lives exactly as long as its job may still refund, whichever path ends it.

Trial cases: a cancelled waiting refund kept its hold forever (1); a retried or replayed failed
refund was sent again without its balance being checked (3); a replay's dry run listed jobs the
replay would withhold, and an operator's group replay told each tenant the others' withheld
jobs (4). Real sandbox PSP, real SQLite and PostgreSQL, the executor and sweeper as they run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.lifecycle import claim_job
from store.models import Job, PaymentHold, PaymentKey
from store.ops import OpsFilter
from store.payment_claims import lock_payment
from store.types import utcnow
from tasks import ops
from tasks.executor import Execution, execute
from tasks.maintenance import sweep
from tasks.publish import producer_app
from tests.support.broker import purge
from tests.tasks.factories import load, make_job, sandbox_stats, script_faults, with_sandbox

QUEUES = ("payments", "data", "webhooks", "maintenance")


@pytest.fixture
def s(settings: Settings, sandbox: str) -> Iterator[Settings]:
    """Settings pointing the providers at the sandbox, queues empty before and after."""
    purge(settings, *QUEUES)
    yield with_sandbox(settings, sandbox)
    purge(settings, *QUEUES)


@pytest.fixture
def client(s: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s)) as test_client:
        yield test_client


def headers(key: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


def charged(s: Settings, tenant_id: uuid.UUID, amount: int = 1000) -> str:
    """A captured Stripe charge of the tenant's; its PaymentIntent id."""
    payload = {"amount": amount, "currency": "eur", "payment_method": "pm_card_visa"}
    job_id = make_job(s, tenant_id, "payments.stripe.charge", payload)
    assert execute(job_id, s) is Execution.SUCCEEDED
    result = load(s, job_id).result
    assert result is not None
    return str(result["reference"])


def refund(client: TestClient, key: IssuedKey, reference: str, amount: int, **extra: Any) -> Any:
    body = {
        "type": "payments.stripe.refund",
        "payload": {"reference": reference, "amount": amount},
        **extra,
    }
    return client.post("/v1/jobs", json=body, headers=headers(key))


def refunds_sent(sandbox: str) -> int:
    return int(sandbox_stats(sandbox)["by_path"].get("/v1/refunds", 0))


def _claim_dead_worker(s: Settings, job_id: uuid.UUID) -> None:
    """A worker took the job (its time come) and died: its lease has already expired."""
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=None))
        assert claim_job(session, job_id, "w-dead", timedelta(seconds=-1), utcnow())


def _cancel_by_api(s: Settings, client: TestClient, key: IssuedKey, job_id: uuid.UUID) -> None:
    answer = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers(key))
    assert answer.status_code == 200 and answer.json()["state"] == "cancelled", answer.text


def _cancel_by_operator(s: Settings, client: TestClient, key: IssuedKey, job_id: uuid.UUID) -> None:
    assert ops.cancel(get_database(s), s, job_id, "cli:test") == "cancelled"


def _lost_worker_then_dead(
    s: Settings, client: TestClient, key: IssuedKey, job_id: uuid.UUID
) -> None:
    s1 = s.model_copy(update={"max_deliveries": 1})
    _claim_dead_worker(s1, job_id)
    assert sweep(s1, producer_app(s1))["dead"] == 1


def _cancel_requested_then_worker_lost(
    s: Settings, client: TestClient, key: IssuedKey, job_id: uuid.UUID
) -> None:
    _claim_dead_worker(s, job_id)
    asked = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers(key))
    assert asked.status_code == 202, asked.text
    sweep(s, producer_app(s))


ENDINGS: dict[str, tuple[Callable[[Settings, TestClient, IssuedKey, uuid.UUID], None], str]] = {
    "cancel API": (_cancel_by_api, "cancelled"),
    "operator cancel": (_cancel_by_operator, "cancelled"),
    "sweeper dead worker_lost": (_lost_worker_then_dead, "dead"),
    "sweeper cancel": (_cancel_requested_then_worker_lost, "cancelled"),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_a_refund_ended_without_effect_by_any_path_frees_its_hold(
    s: Settings, client: TestClient, tenant_key: IssuedKey, ending: str
) -> None:
    # Given a charge of 1000 and a refund of all of it waiting until 2030 (it holds 1000)
    reference = charged(s, tenant_key.tenant_id)
    waiting = refund(client, tenant_key, reference, 1000, run_at="2030-01-01T00:00:00Z")
    assert waiting.status_code == 202, waiting.text
    job_id = uuid.UUID(waiting.json()["id"])
    held = refund(client, tenant_key, reference, 1)
    assert held.status_code == 422 and held.json()["error"]["details"]["refundable"] == 0

    # When that refund ends without effect
    end, state = ENDINGS[ending]
    end(s, client, tenant_key, job_id)

    # Then it is in its end state, and the whole 1000 may be refunded again
    assert load(s, job_id).state == state
    again = refund(client, tenant_key, reference, 1000)
    assert again.status_code == 202, again.text


def test_a_refund_under_review_keeps_its_hold(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a refund of 1000 whose answer was lost, now under review (money may have moved)
    reference = charged(s, tenant_key.tenant_id)
    job_id = uuid.UUID(refund(client, tenant_key, reference, 1000).json()["id"])
    script_faults(sandbox, {"reset": "after"})
    assert execute(job_id, s) is Execution.RETRYING
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))

    # When another refund of the same payment is submitted
    other = refund(client, tenant_key, reference, 1)

    # Then it is refused: the reviewed refund still holds the 1000
    assert other.status_code == 422, other.text
    assert other.json()["error"]["details"]["refundable"] == 0


def _failed_refund_then_another(
    s: Settings, sandbox: str, client: TestClient, key: IssuedKey
) -> tuple[uuid.UUID, str]:
    """Charge 1000; refund A of 700 fails (400); refund B of 700 succeeds. A's id."""
    reference = charged(s, key.tenant_id)
    first = uuid.UUID(refund(client, key, reference, 700).json()["id"])
    script_faults(sandbox, {"status": 400})
    assert execute(first, s) is Execution.FAILED
    second = refund(client, key, reference, 700)
    assert second.status_code == 202, second.text
    assert execute(uuid.UUID(second.json()["id"]), s) is Execution.SUCCEEDED
    return first, reference


def test_retrying_a_failed_refund_the_payment_no_longer_covers_is_refused(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given refund A (700) failed and refund B (700) of the same 1000 succeeded
    first, _ = _failed_refund_then_another(s, sandbox, client, tenant_key)
    sent = refunds_sent(sandbox)

    # When A is retried, by its tenant and by an operator
    answer = client.post(f"/v1/jobs/{first}/retry", headers=headers(tenant_key))
    by_ops = ops.retry(get_database(s), s, first, "cli:test")

    # Then 422 refund_exceeds_captured with what is left, A stays failed, nothing is sent
    assert by_ops.startswith("withheld: refund of 700 exceeds the refundable 300"), by_ops
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "refund_exceeds_captured"
    assert error["details"]["refundable"] == 300
    # The amount at fault is the stored job's payload: the retry request has no body
    assert error["details"]["loc"] == ["job", "payload", "amount"]
    assert load(s, first).state == "failed"
    assert refunds_sent(sandbox) == sent


def test_retrying_a_cancelled_refund_is_refused_for_its_state_before_its_balance(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given refund A (1000) cancelled while waiting, then refund B refunded the whole 1000
    reference = charged(s, tenant_key.tenant_id)
    first = uuid.UUID(refund(client, tenant_key, reference, 1000).json()["id"])
    _cancel_by_api(s, client, tenant_key, first)
    second = refund(client, tenant_key, reference, 1000)
    assert second.status_code == 202, second.text
    assert execute(uuid.UUID(second.json()["id"]), s) is Execution.SUCCEEDED
    sent = refunds_sent(sandbox)

    # When A is retried, by its tenant and by an operator
    answer = client.post(f"/v1/jobs/{first}/retry", headers=headers(tenant_key))
    by_ops = ops.retry(get_database(s), s, first, "cli:test")

    # Then both give the same first reason, its state (not the balance), and nothing is sent
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "not_replayable"
    assert answer.json()["error"]["details"]["state"] == "cancelled"
    assert by_ops.startswith("withheld: a cancelled job cannot be retried"), by_ops
    assert load(s, first).state == "cancelled"
    assert refunds_sent(sandbox) == sent


def test_a_refund_with_nothing_left_to_refund_says_so(
    s: Settings, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a payment of 1000 wholly refunded
    reference = charged(s, tenant_key.tenant_id)
    whole = refund(client, tenant_key, reference, 1000)
    assert execute(uuid.UUID(whole.json()["id"]), s) is Execution.SUCCEEDED

    # When another refund of it is asked for
    answer = refund(client, tenant_key, reference, 1)

    # Then the refusal says nothing is left, not "refund of 1 exceeds the refundable 0"
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"] == (
        "nothing is left to refund on this payment (refundable 0 eur)"
    )


def test_replaying_a_failed_refund_the_payment_no_longer_covers_withholds_it(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given refund A (700) failed and refund B (700) of the same 1000 succeeded
    first, _ = _failed_refund_then_another(s, sandbox, client, tenant_key)
    body: dict[str, Any] = {"filter": {"states": ["failed"]}}

    # When failed jobs are replayed, first as a dry run, then for real, then by an operator
    dry = client.post(
        "/v1/jobs/replay", json={**body, "dry_run": True}, headers=headers(tenant_key)
    )
    real = client.post("/v1/jobs/replay", json=body, headers=headers(tenant_key))
    by_ops = ops.replay_group(get_database(s), s, OpsFilter(state="failed"), "cli:test")

    # Then each withholds A, saying why, and A stays failed
    for answer in (dry.json(), real.json()):
        assert answer["job_ids"] == [] and answer["withheld"] == [str(first)], answer
        reason = answer["withheld_reasons"][0]
        assert reason["code"] == "refund_exceeds_captured"
        assert reason["details"]["refundable"] == 300
    assert by_ops.replayed == [] and by_ops.withheld == [first]
    assert load(s, first).state == "failed"


def test_a_retried_refund_reserves_its_amount_again(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given refund A of 700 of a 1000 charge failed (its hold let go: 1000 refundable)
    reference = charged(s, tenant_key.tenant_id)
    first = uuid.UUID(refund(client, tenant_key, reference, 700).json()["id"])
    script_faults(sandbox, {"status": 400})
    assert execute(first, s) is Execution.FAILED

    # When A is retried
    retried = client.post(f"/v1/jobs/{first}/retry", headers=headers(tenant_key))

    # Then it is queued and holds its 700 again: a refund of 301 is refused, 300 accepted
    assert retried.status_code == 202, retried.text
    over = refund(client, tenant_key, reference, 301)
    assert over.status_code == 422 and over.json()["error"]["details"]["refundable"] == 300
    assert refund(client, tenant_key, reference, 300).status_code == 202


def _reviewed_refund_past_retention(
    s: Settings, sandbox: str, client: TestClient, key: IssuedKey
) -> uuid.UUID:
    """A Stripe refund whose answer was lost, under review, its key past retention."""
    reference = charged(s, key.tenant_id)
    job_id = uuid.UUID(refund(client, key, reference, 400).json()["id"])
    script_faults(sandbox, {"reset": "after"})
    assert execute(job_id, s) is Execution.RETRYING
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))
        session.execute(
            update(PaymentKey)
            .where(PaymentKey.job_id == job_id)
            .values(created_at=utcnow() - timedelta(days=2))
        )
    return job_id


def test_a_replay_dry_run_lists_the_jobs_the_replay_would_withhold(
    s: Settings, sandbox: str, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a Stripe refund under review whose key Stripe may have forgotten
    job_id = _reviewed_refund_past_retention(s, sandbox, client, tenant_key)
    body: dict[str, Any] = {"filter": {"states": ["needs_review"]}}

    # When needs_review jobs are replayed as a dry run, through the API and the console
    dry = client.post(
        "/v1/jobs/replay", json={**body, "dry_run": True}, headers=headers(tenant_key)
    )
    console = ops.dry_run(get_database(s), s, OpsFilter(state="needs_review"))

    # Then both say it would be withheld (outcome_unknown), as the replay itself does
    assert dry.json()["job_ids"] == [] and dry.json()["withheld"] == [str(job_id)], dry.text
    assert dry.json()["withheld_reasons"][0]["code"] == "outcome_unknown"
    assert console.replayed == [] and console.withheld == [job_id]
    real = client.post("/v1/jobs/replay", json=body, headers=headers(tenant_key))
    assert real.json()["withheld"] == [str(job_id)] and real.json()["replayed"] == 0
    assert load(s, job_id).state == "needs_review"


def test_an_operators_group_replay_tells_each_tenant_only_of_its_own_jobs(
    s: Settings,
    sandbox: str,
    client: TestClient,
    tenant_key: IssuedKey,
    other_tenant_key: IssuedKey,
) -> None:
    # Given tenant A and tenant B, each with a refund under review that a replay withholds and
    # a job under review that it replays
    withheld, replayed = {}, {}
    for key in (tenant_key, other_tenant_key):
        withheld[key.tenant_id] = _reviewed_refund_past_retention(s, sandbox, client, key)
        job_id = make_job(s, key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"})
        with get_database(s).session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(state="needs_review"))
        replayed[key.tenant_id] = job_id

    # When an operator replays every tenant's jobs under review at once
    done = ops.replay_group(get_database(s), s, OpsFilter(state="needs_review"), "cli:test")
    assert sorted(done.replayed) == sorted(replayed.values())

    # Then each tenant's audit log names its own jobs and never the other's
    for key, other in ((tenant_key, other_tenant_key), (other_tenant_key, tenant_key)):
        events = client.get("/v1/audit-events", headers=headers(key)).json()
        text = str(events)
        assert str(withheld[key.tenant_id]) in text and str(replayed[key.tenant_id]) in text
        assert str(withheld[other.tenant_id]) not in text, events
        assert str(replayed[other.tenant_id]) not in text, events


def test_a_stripe_refunds_job_result_tells_the_payments_totals_and_its_own_amount(
    s: Settings, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given a Stripe payment captured at 1000
    reference = charged(s, tenant_key.tenant_id)

    # When 400 of it is refunded
    job_id = uuid.UUID(refund(client, tenant_key, reference, 400).json()["id"])
    assert execute(job_id, s) is Execution.SUCCEEDED

    # Then the job's result says what the payment captured and refunded, and what this moved
    result = load(s, job_id).result
    assert result is not None
    assert (result["amount_captured"], result["amount_refunded"]) == (1000, 400)
    assert (result["amount"], result["operation_amount"]) == (1000, 400)


def test_a_group_replay_and_a_batch_locking_the_same_payments_both_finish(
    s: Settings, client: TestClient, tenant_key: IssuedKey
) -> None:
    # Given two charges, and a failed refund of each, the larger reference's refund the newer
    # (the operator's replay takes the newest first: its job order is the larger one first)
    low, high = sorted(charged(s, tenant_key.tenant_id) for _ in range(2))
    refunds = [uuid.UUID(refund(client, tenant_key, ref, 100).json()["id"]) for ref in (low, high)]
    with get_database(s).session() as session:
        session.execute(update(Job).where(Job.id.in_(refunds)).values(state="failed"))
        provider = session.scalars(select(PaymentHold.provider)).first()
    assert provider is not None
    # And a transaction that locks both payments as a batch submit does (sorted), slowly
    locked_first = threading.Event()
    errors: list[BaseException] = []

    def batch_like() -> None:
        try:
            with get_database(s).session() as session:
                lock_payment(session, tenant_key.tenant_id, provider, low)
                locked_first.set()
                time.sleep(0.5)  # the replay below now waits on a lock this one holds
                lock_payment(session, tenant_key.tenant_id, provider, high)
        except BaseException as exc:  # a deadlock victim: reported below
            errors.append(exc)
            locked_first.set()

    other = threading.Thread(target=batch_like)
    other.start()
    assert locked_first.wait(10), "the batch-like transaction never took its first lock"
    # When an operator replays the failed jobs meanwhile
    try:
        outcome = ops.replay_group(get_database(s), s, OpsFilter(state="failed"), "cli:test")
    finally:
        other.join(10)
    # Then neither was chosen as a deadlock victim: the replay took its locks in the same order
    assert errors == []
    assert sorted(outcome.replayed) == sorted(refunds)
