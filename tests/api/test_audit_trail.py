"""A tenant's refund, capture or void submit and its cancels leave audit rows naming the key."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import AuditEvent, Job, LedgerEntry
from tests.api.conftest import auth


def test_a_refund_submit_and_its_cancel_are_audited(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a captured Stripe payment in the tenant's ledger
    with get_database(settings).session() as session:
        charge = Job(
            id=uuid.uuid4(),
            tenant_id=tenant_key.tenant_id,
            type="payments.stripe.charge",
            queue="payments",
            payload={},
            state="succeeded",
            request_hash="x" * 64,
            max_attempts=1,
        )
        session.add(charge)
        session.flush()
        session.add(
            LedgerEntry(
                job_id=charge.id,
                tenant_id=tenant_key.tenant_id,
                provider="stripe",
                operation="charge",
                provider_reference="pi_audit1",
                payment_reference="pi_audit1",
                amount=1000,
                currency="eur",
            )
        )
    # When the tenant submits a partial refund and then cancels it
    body = {
        "type": "payments.stripe.refund",
        "payload": {"reference": "pi_audit1", "amount": 300, "currency": "eur"},
    }
    created = client.post("/v1/jobs", json=body, headers=auth(tenant_key))
    job_id = created.json()["id"]
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(tenant_key))
    # Then both are in the audit log, with the key that asked and what was asked
    assert (created.status_code, cancelled.status_code) == (202, 200), created.text
    with get_database(settings).session() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.created_at)))
    assert [(e.action, str(e.job_id)) for e in events] == [
        ("payment.refund", job_id),
        ("job.cancel", job_id),
    ]
    assert events[0].details == {
        "provider": "stripe",
        "payment_reference": "pi_audit1",
        "amount": 300,
        "currency": "eur",
    }
    assert all(str(tenant_key.key_id) in e.actor for e in events)
