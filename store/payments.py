"""Payment keys (saved before the first call) and the ledger of effects (one per operation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database
from store.models import Job, LedgerEntry, PaymentHold, PaymentKey
from store.states import HOLDING_STATES
from store.types import utcnow

CAPTURE_OPERATIONS = ("charge", "capture")
REFUND_OPERATIONS = ("refund",)


class EffectRow(Protocol):
    """What the ledger needs of an effect (`integrations.outcome.LedgerEffect` is one)."""

    @property
    def operation(self) -> str: ...
    @property
    def provider_reference(self) -> str: ...
    @property
    def payment_reference(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...


class LedgerInvariantBroken(Exception):
    """Writing an effect would make the ledger say more was refunded than captured."""


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
    session: Session,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    provider: str,
    effects: Iterable[EffectRow],
) -> None:
    """Add ledger rows in the caller's transaction and release the job's refund hold.

    A second effect for one operation breaks a unique constraint (IntegrityError); a refund
    that would take a payment's refunds past its captures raises LedgerInvariantBroken. Either
    rolls the caller's transaction back.
    """
    for effect in effects:
        session.add(
            LedgerEntry(
                id=uuid.uuid4(),
                job_id=job_id,
                tenant_id=tenant_id,
                provider=provider,
                operation=effect.operation,
                provider_reference=effect.provider_reference,
                payment_reference=effect.payment_reference,
                amount=effect.amount,
                currency=effect.currency,
            )
        )
        session.flush()
        if effect.operation in REFUND_OPERATIONS:
            seen = balance(session, tenant_id, provider, effect.payment_reference)
            if seen is None or seen.refunded > seen.captured:
                raise LedgerInvariantBroken(
                    f"refunds of {effect.payment_reference} would exceed its captures"
                )
    release_hold(session, job_id)


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
    captured = sum(r.amount for r in rows if r.operation in CAPTURE_OPERATIONS)
    refunded = sum(r.amount for r in rows if r.operation in REFUND_OPERATIONS)
    return Balance(currency=rows[0].currency, captured=captured, refunded=refunded)


def ledger_for_job(session: Session, job_id: uuid.UUID) -> list[LedgerEntry]:
    """The ledger rows a job wrote."""
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id)))


def job_for_key(session: Session, idempotency_key: str) -> uuid.UUID | None:
    """The job that owns a payment key."""
    return session.scalar(
        select(PaymentKey.job_id).where(PaymentKey.idempotency_key == idempotency_key).limit(1)
    )


def held_for_refunds(
    session: Session, tenant_id: uuid.UUID, provider: str, payment_reference: str
) -> int:
    """Minor units reserved by refund jobs of this payment that have not landed or let go.

    A hold counts while its refund has not landed in the ledger (`released_at`) and its job may
    still refund (HOLDING_STATES): a job that ended failed, dead or cancelled, by any path,
    holds nothing, and a retry or replay that brings it back re-reserves (`reserve_again`).
    """
    held = session.scalar(
        select(func.coalesce(func.sum(PaymentHold.amount), 0))
        .join(Job, Job.id == PaymentHold.job_id)
        .where(
            PaymentHold.tenant_id == tenant_id,
            PaymentHold.provider == provider,
            PaymentHold.payment_reference == payment_reference,
            PaymentHold.released_at.is_(None),
            Job.state.in_([s.value for s in HOLDING_STATES]),
        )
    )
    return int(held or 0)


def release_hold(session: Session, job_id: uuid.UUID) -> None:
    """Let go of a job's refund hold for good: its refund landed in the ledger."""
    session.execute(
        update(PaymentHold)
        .where(PaymentHold.job_id == job_id, PaymentHold.released_at.is_(None))
        .values(released_at=utcnow())
        .execution_options(synchronize_session=False)
    )
