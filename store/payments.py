"""Payment keys (saved before the first call) and the ledger of effects (one per operation)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database
from store.models import LedgerEntry, PaymentKey


@dataclass(frozen=True)
class Effect:
    """One effect a provider reported, to be written to the ledger with the job's end."""

    provider: str
    operation: str
    provider_reference: str
    payment_reference: str
    amount: int
    currency: str


def remember_key(
    db: Database, job_id: uuid.UUID, operation: str, provider: str, key: str
) -> tuple[str, datetime]:
    """The key of a job operation, saved on first use; later calls get the saved one back."""
    try:
        with db.session() as session:
            session.add(
                PaymentKey(
                    job_id=job_id, operation=operation, provider=provider, idempotency_key=key
                )
            )
    except IntegrityError:
        pass  # saved by an earlier attempt: that one is the key for good (I5)
    with db.session() as session:
        row = session.get(PaymentKey, (job_id, operation))
        assert row is not None
        return row.idempotency_key, row.created_at


def first_key_at(session: Session, job_id: uuid.UUID) -> datetime | None:
    """When the job's first payment key was saved: the age its provider keys have."""
    return session.scalar(
        select(func.min(PaymentKey.created_at)).where(PaymentKey.job_id == job_id)
    )


def job_keys(session: Session, job_id: uuid.UUID) -> dict[str, str]:
    """operation → idempotency key of a job."""
    rows = session.execute(
        select(PaymentKey.operation, PaymentKey.idempotency_key).where(PaymentKey.job_id == job_id)
    )
    return {row.operation: row.idempotency_key for row in rows}


def record_effects(
    session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID, effects: list[Effect]
) -> None:
    """Add ledger rows in the caller's transaction; a second effect for one operation fails it."""
    for effect in effects:
        session.add(
            LedgerEntry(
                id=uuid.uuid4(),
                job_id=job_id,
                tenant_id=tenant_id,
                provider=effect.provider,
                operation=effect.operation,
                provider_reference=effect.provider_reference,
                payment_reference=effect.payment_reference,
                amount=effect.amount,
                currency=effect.currency,
            )
        )
    session.flush()


@dataclass(frozen=True)
class Balance:
    """What the ledger says of one payment: captured and refunded so far."""

    currency: str | None
    captured: int
    refunded: int

    @property
    def refundable(self) -> int:
        """What may still be refunded."""
        return self.captured - self.refunded


def balance(
    session: Session, tenant_id: uuid.UUID, provider: str, payment_reference: str
) -> Balance | None:
    """The ledger's view of one payment of this tenant; None when the ledger never saw it."""
    rows = session.execute(
        select(LedgerEntry.operation, LedgerEntry.amount, LedgerEntry.currency).where(
            LedgerEntry.tenant_id == tenant_id,
            LedgerEntry.provider == provider,
            LedgerEntry.payment_reference == payment_reference,
        )
    ).all()
    if not rows:
        return None
    captured = sum(r.amount for r in rows if r.operation in ("charge", "capture"))
    refunded = sum(r.amount for r in rows if r.operation == "refund")
    return Balance(currency=rows[0].currency, captured=captured, refunded=refunded)


def ledger_for_job(session: Session, job_id: uuid.UUID) -> list[LedgerEntry]:
    """The ledger rows a job wrote."""
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))


def job_for_key(session: Session, idempotency_key: str) -> uuid.UUID | None:
    """The job that owns a payment key."""
    return session.scalar(
        select(PaymentKey.job_id).where(PaymentKey.idempotency_key == idempotency_key).limit(1)
    )
