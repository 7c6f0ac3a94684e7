"""What a capture, void or refund claims of a payment, checked inside the submitting transaction.

A tenant may only act on payments its own ledger holds (docs/design.md §4), and a refund
reserves the amount it refunds (a `payment_holds` row) in the same transaction that commits
its job, so two refunds submitted at once cannot both pass against one balance: the second
waits for the first's lock and then sees its hold.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from store.models import AuditEvent, Job, LedgerEntry, PaymentHold
from store.payments import balance, held_for_refunds
from store.states import HOLDING_STATES


@dataclass(frozen=True)
class PaymentClaim:
    """A payment operation's claim on an earlier payment of the same tenant.

    `amount` (minor units) and `currency` as submitted; None means "all that is left" for a
    refund and "the authorised amount" for a capture.
    """

    provider: str
    operation: str  # capture | void | refund
    payment_reference: str
    amount: int | None = None
    currency: str | None = None
    # Who submitted it (e.g. `key:<id>`): its `payment.<operation>` audit row is written in the
    # transaction that commits the job, so a refused submit leaves none and an accepted one
    # cannot lack it.
    actor: str | None = None


@dataclass
class PaymentRefused(Exception):
    """The claim fails: `code` for the API's error, `param` the payload field at fault."""

    code: str
    message: str
    param: str
    details: dict[str, Any] = field(default_factory=dict)
    position: int = 0  # which job of a batch

    def __str__(self) -> str:
        return self.message


def lock_payment(session: Session, tenant_id: uuid.UUID, provider: str, reference: str) -> None:
    """Serialise claims on one payment until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on a hash of the payment. SQLite: a write
    statement, which takes the database's single write lock (waiting out another writer
    within the busy timeout) before anything is read.
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"{tenant_id}:{provider}:{reference}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        session.execute(update(PaymentHold).where(PaymentHold.job_id.is_(None)).values(amount=0))


def lock_payments(session: Session, places: Iterable[tuple[uuid.UUID, str, str]]) -> None:
    """Lock several payments, each (tenant, provider, reference), in the one order every
    caller uses (sorted), so two transactions locking overlapping sets cannot deadlock."""
    for tenant_id, provider, reference in sorted(set(places), key=lambda p: (str(p[0]), p[1:])):
        lock_payment(session, tenant_id, provider, reference)


def lock_payments_held_by(session: Session, job_ids: Collection[uuid.UUID]) -> None:
    """Take the lock of every payment these jobs hold (or held) a refund on, in one order.

    For a replay of many jobs in one transaction: it then locks as a batch submit does
    (`lock_payments`), so the two cannot deadlock on PostgreSQL, and each job's
    `reserve_again` re-takes a lock it already holds (advisory locks are re-entrant).
    """
    if not job_ids:
        return
    places = session.execute(
        select(PaymentHold.tenant_id, PaymentHold.provider, PaymentHold.payment_reference).where(
            PaymentHold.job_id.in_(list(job_ids))
        )
    ).all()
    lock_payments(session, ((p.tenant_id, p.provider, p.payment_reference) for p in places))


def check_claim(
    session: Session, tenant_id: uuid.UUID, claim: PaymentClaim, held_here: int = 0
) -> tuple[int | None, str | None]:
    """The (amount, currency) the claim stands for, or PaymentRefused.

    `held_here` is what earlier refunds of the same batch already reserved on this payment.
    """
    owned = session.scalar(
        select(LedgerEntry.id)
        .where(
            LedgerEntry.tenant_id == tenant_id,
            LedgerEntry.provider == claim.provider,
            LedgerEntry.payment_reference == claim.payment_reference,
        )
        .limit(1)
    )
    if owned is None:
        raise PaymentRefused(
            "unknown_payment",
            f"no {claim.provider} payment with this reference in this tenant's ledger",
            "reference",
        )
    if claim.operation != "refund":
        return claim.amount, claim.currency
    seen = balance(session, tenant_id, claim.provider, claim.payment_reference)
    assert seen is not None and seen.currency is not None
    if claim.currency is not None and claim.currency != seen.currency:
        raise PaymentRefused(
            "currency_mismatch",
            f"the payment is in {seen.currency}, not {claim.currency}",
            "currency",
            {"currency": seen.currency},
        )
    held = held_for_refunds(session, tenant_id, claim.provider, claim.payment_reference)
    refundable = seen.refundable - held - held_here
    amount = claim.amount if claim.amount is not None else refundable
    if amount <= 0 or amount > refundable:
        raise PaymentRefused(
            "refund_exceeds_captured",
            _exceeds(amount, refundable, seen.currency),
            "amount",
            {"refundable": max(refundable, 0), "currency": seen.currency},
        )
    return amount, seen.currency


def hold(
    session: Session,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    claim: PaymentClaim,
    amount: int,
    currency: str,
) -> None:
    """Reserve a refund's amount until its job lands in the ledger or ends without effect."""
    session.add(
        PaymentHold(
            job_id=job_id,
            tenant_id=tenant_id,
            provider=claim.provider,
            payment_reference=claim.payment_reference,
            amount=amount,
            currency=currency,
        )
    )


def audit_claim(
    session: Session,
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    claim: PaymentClaim,
    amount: int | None,
    currency: str | None,
) -> None:
    """Add the `payment.<operation>` audit row of a submitted claim to the caller's transaction."""
    if claim.actor is None:
        return
    session.add(
        AuditEvent(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            actor=claim.actor,
            action=f"payment.{claim.operation}",
            job_id=job_id,
            details={
                "provider": claim.provider,
                "payment_reference": claim.payment_reference,
                "amount": amount,
                "currency": currency,
            },
        )
    )


def _exceeds(amount: int, refundable: int, currency: str | None) -> str:
    """Why a refund is refused: nothing left at all, or less left than it asks."""
    if refundable <= 0:
        return f"nothing is left to refund on this payment (refundable 0 {currency})"
    return f"refund of {amount} exceeds the refundable {refundable} {currency}"


def refund_refusal(session: Session, job_id: uuid.UUID) -> PaymentRefused | None:
    """Why bringing a refund job back (retry, replay) would refund more than was captured.

    None when the job is no refund, or still holds its amount, or the payment's refundable
    balance (captures, less refunds and other live holds) still covers it. Read-only: the
    dry run and the replay itself ask this same question (the replay under the payment's lock,
    through `reserve_again`).
    """
    row = session.execute(
        select(PaymentHold, Job.state)
        .join(Job, Job.id == PaymentHold.job_id)
        .where(PaymentHold.job_id == job_id)
    ).one_or_none()
    if row is None:
        return None
    held, state = row
    if held.released_at is None and state in {s.value for s in HOLDING_STATES}:
        return None  # its amount is still reserved (e.g. needs_review)
    seen = balance(session, held.tenant_id, held.provider, held.payment_reference)
    others = held_for_refunds(session, held.tenant_id, held.provider, held.payment_reference)
    refundable = (seen.refundable if seen is not None else 0) - others
    if held.amount <= refundable:
        return None
    return PaymentRefused(
        "refund_exceeds_captured",
        _exceeds(held.amount, refundable, held.currency),
        "amount",
        {"refundable": max(refundable, 0), "currency": held.currency},
    )


def reserve_again(session: Session, job_id: uuid.UUID) -> None:
    """Reserve a refund job's hold again as it is brought back, or raise PaymentRefused.

    Under the payment's lock, in the caller's (retrying) transaction, so a retry and a new
    refund of the same payment cannot both pass against one balance. No-op for other jobs.
    """
    place = session.execute(
        select(PaymentHold.tenant_id, PaymentHold.provider, PaymentHold.payment_reference).where(
            PaymentHold.job_id == job_id
        )
    ).one_or_none()
    if place is None:
        return
    lock_payment(session, place.tenant_id, place.provider, place.payment_reference)
    refused = refund_refusal(session, job_id)
    if refused is not None:
        raise refused
    session.execute(
        update(PaymentHold)
        .where(PaymentHold.job_id == job_id)
        .values(released_at=None)
        .execution_options(synchronize_session=False)
    )
