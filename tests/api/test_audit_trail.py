"""A tenant's refund, capture or void submit and its cancels leave audit rows naming the key."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from api.app import create_app
from config.settings import Settings
from store.db import Database, get_database
from store.keys import IssuedKey
from store.models import AuditEvent, Job, LedgerEntry
from tests.api.conftest import auth


def captured_payment(settings: Settings, tenant_id: uuid.UUID, reference: str) -> None:
    """A captured 10.00 EUR Stripe payment in the tenant's ledger."""
    with get_database(settings).session() as session:
        charge = Job(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
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
                tenant_id=tenant_id,
                provider="stripe",
                operation="charge",
                provider_reference=reference,
                payment_reference=reference,
                amount=1000,
                currency="eur",
            )
        )


def rows(settings: Settings) -> tuple[list[AuditEvent], list[Job]]:
    """Every audit row (oldest first) and every job but the ledger's charges."""
    with get_database(settings).session() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.created_at)))
        jobs = list(session.scalars(select(Job).where(Job.type != "payments.stripe.charge")))
    return events, jobs


def test_a_refund_submit_and_its_cancel_are_audited(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a captured Stripe payment in the tenant's ledger
    captured_payment(settings, tenant_key.tenant_id, "pi_audit1")
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


@pytest.mark.parametrize(
    ("operation", "payload", "amount", "batch"),
    [
        ("capture", {}, None, False),
        ("capture", {}, None, True),
        ("void", {}, None, False),
        ("void", {}, None, True),
        ("refund", {"amount": 250, "currency": "eur"}, 250, False),
        ("refund", {"amount": 250, "currency": "eur"}, 250, True),
        ("refund", {}, 1000, False),  # "all that is left": audited with what that was
    ],
)
def test_each_capture_void_and_refund_submit_commits_with_its_audit_row(
    client: TestClient,
    settings: Settings,
    tenant_key: IssuedKey,
    operation: str,
    payload: dict[str, object],
    amount: int | None,
    batch: bool,
) -> None:
    # Given a captured Stripe payment of the tenant
    captured_payment(settings, tenant_key.tenant_id, "pi_audit2")
    # When the tenant submits the operation on it (alone, or in a batch)
    body = {
        "type": f"payments.stripe.{operation}",
        "payload": {"reference": "pi_audit2", **payload},
    }
    if batch:
        answer = client.post("/v1/jobs/batch", json={"jobs": [body]}, headers=auth(tenant_key))
    else:
        answer = client.post("/v1/jobs", json=body, headers=auth(tenant_key))
    # Then the job has exactly one audit row naming the key, the payment and the amount
    assert answer.status_code == 202, answer.text
    events, jobs = rows(settings)
    assert len(jobs) == 1 and [e.job_id for e in events] == [jobs[0].id]
    event = events[0]
    assert event.action == f"payment.{operation}"
    assert str(tenant_key.key_id) in event.actor
    assert event.details["payment_reference"] == "pi_audit2"
    assert event.details["amount"] == amount


def test_a_refused_submit_writes_neither_job_nor_audit_row(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a captured payment of the tenant, and a reference it does not own
    captured_payment(settings, tenant_key.tenant_id, "pi_owned")
    good = {"type": "payments.stripe.refund", "payload": {"reference": "pi_owned"}}
    bad = {"type": "payments.stripe.refund", "payload": {"reference": "pi_someone_elses"}}
    # When the unknown one is submitted alone, after a good one in a batch, and a refund
    # beyond the balance follows a full one in a batch
    alone = client.post("/v1/jobs", json=bad, headers=auth(tenant_key))
    mixed = client.post("/v1/jobs/batch", json={"jobs": [good, bad]}, headers=auth(tenant_key))
    over = {"type": "payments.stripe.refund", "payload": {"reference": "pi_owned", "amount": 1}}
    beyond = client.post("/v1/jobs/batch", json={"jobs": [good, over]}, headers=auth(tenant_key))
    # Then each is refused, and nothing at all was written: no job, no audit row
    assert [r.status_code for r in (alone, mixed, beyond)] == [422, 422, 422]
    assert rows(settings) == ([], [])


def test_a_submit_whose_audit_row_cannot_be_written_is_not_committed(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a captured payment, and a database that refuses every audit row (a trigger)
    captured_payment(settings, tenant_key.tenant_id, "pi_audit3")
    db = get_database(settings)
    refuse_audit_rows(db)
    body = {"type": "payments.stripe.void", "payload": {"reference": "pi_audit3"}}
    try:
        # When the tenant submits a void
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            answer = client.post("/v1/jobs", json=body, headers=auth(tenant_key))
    finally:
        allow_audit_rows(db)
    # Then the submit failed as a whole: no void job exists without its audit row
    assert answer.status_code >= 500, answer.text
    assert rows(settings) == ([], [])


def refuse_audit_rows(db: Database) -> None:
    """Make every INSERT into audit_events fail, on SQLite and PostgreSQL."""
    with db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                )
            )


def allow_audit_rows(db: Database) -> None:
    """Undo `refuse_audit_rows`."""
    with db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("DROP TRIGGER IF EXISTS refuse_audit ON audit_events"))
            session.execute(text("DROP FUNCTION IF EXISTS refuse_audit()"))
        else:
            session.execute(text("DROP TRIGGER IF EXISTS refuse_audit"))
