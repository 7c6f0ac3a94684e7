"""Payment events for payments settled outside a worker's finish: by reconciliation, and by a
provider webhook that settles a payment under review. The event rows and their deliveries
commit with the settlement, and are delivered like any other."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.provider_events import record_event
from store.webhook_models import WebhookDelivery, WebhookEvent
from tasks.provider_events import apply_event
from tasks.reconcile import reconcile
from tests.support.receiver import receiver
from tests.tasks.factories import load, make_job
from tests.tasks.test_payment_jobs import _under_review, charge, psp_holds
from tests.tasks.test_webhook_delivery import (
    endpoint,
    run_until_settled,
    verify,
)


def events_of(settings: Settings, job_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the job's events, in the order written."""
    with get_database(settings).session() as session:
        rows = session.scalars(
            select(WebhookEvent).where(WebhookEvent.job_id == job_id).order_by(WebhookEvent.type)
        )
        return [(e.type, e.data) for e in rows]


def stripe_charge_under_review(
    s: Settings, tenant_id: uuid.UUID, amount: int | None = None
) -> tuple[uuid.UUID, str]:
    """A Stripe charge job (of `amount`, else the default) left under review; its id and key."""
    body = charge("stripe") if amount is None else charge("stripe", amount)
    job_id = make_job(s, tenant_id, "payments.stripe.charge", body)
    key = f"cv-{job_id}-charge"
    _under_review(s, job_id, "stripe", key)
    return job_id, key


def test_reconciliation_writes_job_succeeded_and_payment_captured_with_the_settlement(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given a tenant's endpoint and a charge of 2500 under review that the PSP did make
    s = hooked
    with receiver() as rx:
        _, secret = endpoint(s, tenant_key.tenant_id, rx.url())
        job_id, key = stripe_charge_under_review(s, tenant_key.tenant_id, 2500)
        intent = psp_holds(s.sandbox_url, 2500, key)
        # When reconciliation adopts it, and runs again
        assert "adopted_charge" in [f.kind for f in reconcile(s) if f.job_id == str(job_id)]
        reconcile(s)
        # Then the settled job has job.succeeded and payment.captured, written once
        assert load(s, job_id).state == "succeeded"
        events = events_of(s, job_id)
        assert [t for t, _ in events] == ["job.succeeded", "payment.captured"]
        captured = events[1][1]
        assert (captured["amount"], captured["reference"]) == (2500, intent["id"])
        assert captured["operation"] == "charge"
        # And each is delivered to the endpoint, signed
        with get_database(s).session() as session:
            deliveries = list(session.scalars(select(WebhookDelivery.job_id)))
        assert len(deliveries) == 2
        for delivery in deliveries:
            assert run_until_settled(s, delivery) == "succeeded"
    delivered = sorted(verify(secret, got)["type"] for got in rx.received)  # type: ignore[type-var]
    assert delivered == ["job.succeeded", "payment.captured"]


def test_reconciliation_failing_a_charge_never_made_writes_job_failed(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given an endpoint and a charge under review the PSP has no record of
    s = hooked
    endpoint(s, tenant_key.tenant_id, "http://127.0.0.1:9/unused")
    job_id, _ = stripe_charge_under_review(s, tenant_key.tenant_id)
    # When reconciliation settles it as not charged
    reconcile(s)
    # Then job.failed is written with it, and no payment event
    assert [(t, d["error"]["code"]) for t, d in events_of(s, job_id)] == [
        ("job.failed", "not_charged")
    ]


def test_a_provider_webhook_settling_a_charge_writes_its_payment_event(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given an endpoint and a Stripe charge under review, which the PSP did make
    s = hooked
    endpoint(s, tenant_key.tenant_id, "http://127.0.0.1:9/unused")
    job_id, key = stripe_charge_under_review(s, tenant_key.tenant_id, 3100)
    intent = psp_holds(s.sandbox_url, 3100, key)
    # When Stripe's payment_intent.succeeded for it is applied
    event_id = f"evt_{uuid.uuid4().hex}"
    body = {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent["id"], "metadata": {"conveyor_key": key}}},
    }
    row = record_event(
        get_database(s), "stripe", event_id, "payment_intent.succeeded", intent["id"], body
    )
    assert row is not None
    apply_event(s, row)
    # Then the settled job has its job.succeeded and payment.captured events
    assert load(s, job_id).state == "succeeded"
    events = events_of(s, job_id)
    assert [t for t, _ in events] == ["job.succeeded", "payment.captured"]
    assert events[1][1]["amount"] == 3100
