"""Inbound provider webhooks: kept once per (provider, event id), processed at most once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database
from store.models import LedgerEntry, ProviderEvent
from store.types import utcnow


def record_event(
    db: Database,
    provider: str,
    event_id: str,
    event_type: str,
    payment_reference: str | None,
    payload: dict[str, Any],
) -> uuid.UUID | None:
    """Commit an event row and return its id; None when this provider sent that event before."""
    row = ProviderEvent(
        id=uuid.uuid4(),
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        payment_reference=payment_reference,
        payload=payload,
        received_at=utcnow(),
    )
    try:
        with db.session() as session:
            session.add(row)
    except IntegrityError:
        # The unique (provider, event_id) decides, not a read first: two concurrent deliveries
        # of one event cannot both get in. Nothing else was written in that transaction.
        with db.session() as session:
            seen = session.scalar(
                select(ProviderEvent.id).where(
                    ProviderEvent.provider == provider, ProviderEvent.event_id == event_id
                )
            )
        if seen is None:  # some other constraint failed: not a duplicate, so not ours to hide
            raise
        return None
    return row.id


def get_event(session: Session, event_id: uuid.UUID) -> ProviderEvent | None:
    """An event row by our id."""
    return session.get(ProviderEvent, event_id)


def mark_processed(session: Session, event_id: uuid.UUID, now: datetime) -> bool:
    """Stamp an event processed; False when it was already (a duplicate delivery)."""
    result = session.execute(
        update(ProviderEvent)
        .where(ProviderEvent.id == event_id, ProviderEvent.processed_at.is_(None))
        .values(processed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def unprocessed_events(session: Session, older_than: datetime, limit: int) -> list[uuid.UUID]:
    """Ids of events received before `older_than` and still unprocessed (a publish was lost)."""
    stmt = (
        select(ProviderEvent.id)
        .where(ProviderEvent.processed_at.is_(None), ProviderEvent.received_at < older_than)
        .order_by(ProviderEvent.received_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def ledger_for_payment(
    session: Session, provider: str, payment_reference: str
) -> list[LedgerEntry]:
    """The ledger entries of one payment at a provider, oldest first."""
    stmt = (
        select(LedgerEntry)
        .where(LedgerEntry.provider == provider, LedgerEntry.payment_reference == payment_reference)
        .order_by(LedgerEntry.created_at)
    )
    return list(session.scalars(stmt))


EVENTS_PER_PAYMENT = 50


def event_payloads(session: Session, provider: str, payment_reference: str) -> list[dict[str, Any]]:
    """The provider's stored webhook payloads for one payment, newest first (at most 50)."""
    stmt = (
        select(ProviderEvent.payload)
        .where(
            ProviderEvent.provider == provider,
            ProviderEvent.payment_reference == payment_reference,
        )
        .order_by(ProviderEvent.received_at.desc())
        .limit(EVENTS_PER_PAYMENT)
    )
    return [dict(payload) for payload in session.scalars(stmt)]
