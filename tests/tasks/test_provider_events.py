"""Applying a recorded provider webhook: processed once, linked to our jobs via the ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

import tasks.provider_events as provider_events
from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import LedgerEntry, ProviderEvent
from store.provider_events import get_event, record_event
from tasks.entry import apply_provider_event_task
from tasks.maintenance import sweep
from tasks.provider_events import APPLY_EVENT_TASK, Applied, apply_event
from tasks.publish import producer_app
from tests.api import test_provider_webhooks as webhooks
from tests.tasks.factories import CHARGE, make_job
from workers.queues import task_routes

CHARGE_TYPE = "payments.sandbox.charge"


class FakeLog:
    """Stands in for the module's structlog logger and keeps what was logged."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> FakeLog:
    """The task module's log, captured."""
    fake = FakeLog()
    monkeypatch.setattr(provider_events, "log", fake)
    return fake


@pytest.fixture(autouse=True)
def payment_rows_cleared(settings: Settings) -> Iterator[None]:
    """Ledger and event rows go before the shared fixture deletes the jobs they point at."""
    yield
    with get_database(settings).session() as session:
        session.execute(delete(LedgerEntry))
        session.execute(delete(ProviderEvent))


def charged_job(settings: Settings, tenant_id: uuid.UUID, payment_reference: str) -> uuid.UUID:
    """A charge job with the ledger entry its effect at Stripe left; the job's id."""
    job_id = make_job(settings, tenant_id, CHARGE_TYPE, CHARGE)
    with get_database(settings).session() as session:
        session.add(
            LedgerEntry(
                job_id=job_id,
                tenant_id=tenant_id,
                provider="stripe",
                operation="charge",
                provider_reference=f"ch_{uuid.uuid4().hex[:12]}",
                payment_reference=payment_reference,
                amount=CHARGE["amount"],
                currency="EUR",
            )
        )
    return job_id


def stripe_event(settings: Settings, payment_reference: str | None) -> uuid.UUID:
    """A recorded, unprocessed Stripe event about this payment; its row id."""
    event_id = f"evt_{uuid.uuid4().hex[:12]}"
    row_id = record_event(
        get_database(settings),
        "stripe",
        event_id,
        "payment_intent.succeeded",
        payment_reference,
        {"id": event_id, "type": "payment_intent.succeeded"},
    )
    assert row_id is not None
    return row_id


def event_row(settings: Settings, row_id: uuid.UUID) -> ProviderEvent:
    """The event row as stored."""
    with get_database(settings).session() as session:
        row = get_event(session, row_id)
        assert row is not None
        return row


def test_an_event_about_our_payment_is_processed_and_linked_to_the_job(
    settings: Settings, tenant_key: IssuedKey, log: FakeLog
) -> None:
    # Given a job whose charge left a ledger entry for pi_linked, and an event about pi_linked
    job_id = charged_job(settings, tenant_key.tenant_id, "pi_linked")
    row_id = stripe_event(settings, "pi_linked")

    # When the task applies it
    status = apply_event(settings, row_id)

    # Then it is linked and stamped processed
    assert status == Applied.LINKED
    assert event_row(settings, row_id).processed_at is not None
    # and the log line names the job, the provider and the event type
    [(level, event, fields)] = log.lines
    assert (level, event) == ("info", "provider_event.applied")
    assert fields["job_id"] == str(job_id)
    assert fields["provider"] == "stripe"
    assert fields["event_type"] == "payment_intent.succeeded"
    assert fields["payment_reference"] == "pi_linked"


def test_an_event_about_an_unknown_payment_is_processed_without_a_job(
    settings: Settings, tenant_key: IssuedKey, log: FakeLog
) -> None:
    # Given a ledger entry for another payment, and one event with no payment at all
    charged_job(settings, tenant_key.tenant_id, "pi_other")
    unknown = stripe_event(settings, "pi_unknown")
    no_payment = stripe_event(settings, None)

    # Then both are processed, neither linked
    assert apply_event(settings, unknown) == Applied.UNLINKED
    assert apply_event(settings, no_payment) == Applied.UNLINKED
    assert event_row(settings, unknown).processed_at is not None
    assert event_row(settings, no_payment).processed_at is not None
    assert [fields["job_id"] for _, _, fields in log.lines] == [None, None]


def test_a_second_delivery_of_the_same_event_changes_nothing(
    settings: Settings, tenant_key: IssuedKey, log: FakeLog
) -> None:
    # Given an event applied once
    charged_job(settings, tenant_key.tenant_id, "pi_twice")
    row_id = stripe_event(settings, "pi_twice")
    assert apply_event(settings, row_id) == Applied.LINKED
    first = event_row(settings, row_id).processed_at

    # When the broker delivers it again
    status = apply_event(settings, row_id)

    # Then it is left alone: same stamp, no second log line
    assert status == Applied.ALREADY_PROCESSED
    assert event_row(settings, row_id).processed_at == first
    assert len(log.lines) == 1


def test_an_unknown_event_id_is_reported_missing(settings: Settings, log: FakeLog) -> None:
    assert apply_event(settings, uuid.uuid4()) == Applied.MISSING
    [(level, event, _)] = log.lines
    assert (level, event) == ("warning", "provider_event.missing")


def test_the_task_has_its_stable_name_and_runs_on_the_payments_queue() -> None:
    assert apply_provider_event_task.name == APPLY_EVENT_TASK == "payments.webhooks.apply_event"
    assert task_routes()[APPLY_EVENT_TASK] == {"queue": "payments"}


def test_an_event_acknowledged_while_the_broker_was_down_is_applied_by_the_sweep_once(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a charge of ours, and Stripe's event about its payment acknowledged by the API
    # while the broker was unreachable (stored, 2xx, never published)
    s = settings.model_copy(update={"republish_after_s": 0.5})
    job_id = charged_job(s, tenant_key.tenant_id, "pi_stranded")
    offline = s.model_copy(update={"broker_url": webhooks.UNREACHABLE_BROKER})
    with TestClient(create_app(offline)) as client:
        body = webhooks.stripe_event("evt_stranded", id="pi_stranded", object="payment_intent")
        assert webhooks.post_stripe(client, offline, body).status_code == 200
    with get_database(s).session() as session:
        [event] = session.scalars(select(ProviderEvent)).all()
    assert event.processed_at is None
    # When sweeps run after the event's own task had its chance
    time.sleep(0.6)
    first = sweep(s, producer_app(s))
    second = sweep(s, producer_app(s))
    # Then the first applied it (linked to our job) and the second found nothing left
    assert (first["events"], second["events"]) == (1, 0)
    with get_database(s).session() as session:
        row = get_event(session, event.id)
        assert row is not None and row.processed_at is not None
    assert job_id is not None
