"""Jobs as the API sees them: submit (idempotently), read, list with keyset pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from store.db import Database
from store.keyset import decode_cursor, encode_cursor, uuid_key
from store.models import JOBS, Job
from store.payment_claims import (
    PaymentClaim,
    PaymentRefused,
    audit_claim,
    check_claim,
    hold,
    lock_payments,
)
from store.states import JobState
from store.types import utcnow

# `enqueued_at` of a queued job whose message may never have reached the broker: older than any
# threshold, so the sweeper's one index range (state, enqueued_at) finds it on its next pass.
NEVER_PUBLISHED = datetime(1970, 1, 1, tzinfo=UTC)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request."""


@dataclass(frozen=True)
class NewJob:
    """What a caller submits; the store fills in the rest."""

    tenant_id: uuid.UUID
    type: str
    queue: str
    payload: dict[str, Any]
    request_hash: str
    max_attempts: int
    idempotency_key: str | None = None
    run_at: datetime | None = None
    correlation_id: str | None = None
    retry_policy: dict[str, Any] | None = None
    notify_on_end: bool = False
    callback_url: str | None = None  # address-checked by the caller; gets the terminal event
    # A capture, void or refund: checked against the tenant's ledger, and for a refund its
    # amount reserved, inside the transaction that commits the job (store/payment_claims.py).
    claim: PaymentClaim | None = None


@dataclass
class Page:
    """One keyset page of jobs and the cursor to the next one."""

    jobs: Sequence[Job]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Submitted:
    """A job a batch committed: what the caller answers with and publishes."""

    id: uuid.UUID
    type: str
    queue: str
    state: str
    next_attempt_at: datetime | None


def _row(new: NewJob, now: datetime) -> dict[str, Any]:
    scheduled = new.run_at is not None and new.run_at > now
    return {
        "id": uuid.uuid4(),
        "tenant_id": new.tenant_id,
        "type": new.type,
        "queue": new.queue,
        "payload": new.payload,
        "state": JobState.QUEUED.value,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "attempts": 0,
        "deliveries": 0,
        "max_attempts": new.max_attempts,
        "next_attempt_at": new.run_at if scheduled else None,
        "enqueued_at": None if scheduled else now,
        "correlation_id": new.correlation_id,
        "retry_policy": new.retry_policy,
        "replays": 0,
        "notify_on_end": new.notify_on_end,
        "callback_url": new.callback_url,
        "created_at": now,
        "updated_at": now,
    }


def submit_job(db: Database, new: NewJob) -> tuple[Job, bool]:
    """Commit a job row; with an idempotency key, return the earlier job instead (created=False).

    Raises IdempotencyConflict when the key was used with another request body.
    """
    row = _row(new, utcnow())
    if new.claim is not None and new.idempotency_key is not None:
        # A replayed refund must find its job, not be re-checked against what it refunded.
        with db.session() as session:
            earlier = _by_key(session, new.tenant_id, new.idempotency_key)
        if earlier is not None:
            return _replayed(earlier, new), False
    try:
        with db.session() as session:
            claimed = _claim_payments(session, [(new, row)])
            session.execute(insert(JOBS), [row])
            _hold(session, claimed)
            _audit_claims(session, [(new, row)])
        return Job(**row), True
    except IntegrityError:
        if new.idempotency_key is None:
            raise
    with db.session() as session:
        existing = _by_key(session, new.tenant_id, new.idempotency_key)
    assert existing is not None
    return _replayed(existing, new), False


def _by_key(session: Session, tenant_id: uuid.UUID, key: str) -> Job | None:
    return session.scalars(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    ).one_or_none()


def _replayed(existing: Job, new: NewJob) -> Job:
    """The earlier job for the same key and body; IdempotencyConflict for another body."""
    if existing.request_hash != new.request_hash:
        raise IdempotencyConflict(new.idempotency_key)
    return existing


def _claim_payments(
    session: Session, pairs: Sequence[tuple[NewJob, dict[str, Any]]]
) -> list[tuple[NewJob, dict[str, Any], int, str]]:
    """Check every payment claim of a submit, in order; fill in amounts; PaymentRefused if not.

    Returns (job, row, amount, currency) of the refunds, whose holds are written once the job
    rows exist. Locks come in one sorted order, so two batches cannot deadlock.
    """
    claims = [
        (i, new, row, new.claim) for i, (new, row) in enumerate(pairs) if new.claim is not None
    ]
    if not claims:
        return []
    tenant_id = claims[0][1].tenant_id
    lock_payments(session, ((tenant_id, c.provider, c.payment_reference) for *_, c in claims))
    held_here: dict[tuple[str, str], int] = {}
    refunds: list[tuple[NewJob, dict[str, Any], int, str]] = []
    for position, new, row, claim in claims:
        place = (claim.provider, claim.payment_reference)
        try:
            amount, currency = check_claim(session, new.tenant_id, claim, held_here.get(place, 0))
        except PaymentRefused as refused:
            refused.position = position
            raise
        if claim.operation == "refund":
            assert amount is not None and currency is not None
            held_here[place] = held_here.get(place, 0) + amount
            row["payload"] = {**row["payload"], "amount": amount, "currency": currency}
            refunds.append((new, row, amount, currency))
    return refunds


def _hold(session: Session, refunds: list[tuple[NewJob, dict[str, Any], int, str]]) -> None:
    for new, row, amount, currency in refunds:
        assert new.claim is not None
        hold(session, row["id"], new.tenant_id, new.claim, amount, currency)


def _audit_claims(session: Session, pairs: Sequence[tuple[NewJob, dict[str, Any]]]) -> None:
    # A refund's amount and currency are what the claim check settled (written into its payload).
    for new, row in pairs:
        if new.claim is not None:
            payload = row["payload"]
            amount = payload.get("amount", new.claim.amount)
            currency = payload.get("currency", new.claim.currency)
            audit_claim(session, row["id"], new.tenant_id, new.claim, amount, currency)


def add_job(session: Session, new: NewJob, now: datetime) -> Job:
    """Insert a job row in the caller's transaction (a schedule's firing commits it together
    with the slot's run row); the caller publishes its id after the commit."""
    row = _row(new, now)
    session.execute(insert(JOBS), [row])
    return Job(**row)


def submit_jobs(db: Database, news: Sequence[NewJob]) -> list[Submitted]:
    """Commit many job rows in one transaction and one multi-row INSERT (no idempotency keys)."""
    now = utcnow()
    rows = [_row(new, now) for new in news]
    with db.session() as session:
        claimed = _claim_payments(session, list(zip(news, rows, strict=True)))
        session.execute(insert(JOBS), rows)
        _hold(session, claimed)
        _audit_claims(session, list(zip(news, rows, strict=True)))
    return [
        Submitted(r["id"], r["type"], r["queue"], r["state"], r["next_attempt_at"]) for r in rows
    ]


def ask_to_notify(db: Database, job_id: uuid.UUID) -> str | None:
    """Ask whoever ends the job to announce it; returns its state as of that moment.

    Called after subscribing: the worker's finish reads the flag in the same UPDATE that ends
    the job, so either it sees the flag and announces, or the job had ended already and the
    state returned here says so. None when there is no such job.
    """
    with db.connection() as conn:
        state: str | None = conn.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(notify_on_end=True)
            .returning(JOBS.c.state)
        ).scalar_one_or_none()
    return state


def get_job(session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> Job | None:
    """A job by id, optionally only if it belongs to the tenant, with its attempts."""
    stmt = select(Job).options(selectinload(Job.attempt_rows)).where(Job.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    return session.scalars(stmt).one_or_none()


def job_cursor(job: Job) -> str:
    """An opaque cursor pointing just past this job in newest-first order."""
    return encode_cursor(job.created_at, job.id)


def list_jobs(
    session: Session,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    state: str | None = None,
    type: str | None = None,
    error_class: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = None,
) -> Page:
    """A tenant's jobs newest first, keyset-paginated on (created_at, id)."""
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if state is not None:
        stmt = stmt.where(Job.state == state)
    if type is not None:
        stmt = stmt.where(Job.type == type)
    if error_class is not None:
        stmt = stmt.where(Job.error_class == error_class)
    if created_after is not None:
        stmt = stmt.where(Job.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Job.created_at < created_before)
    if cursor is not None:
        created, job_id = decode_cursor(cursor, uuid_key)
        # A row-value comparison the (tenant, created_at, id) index can bound, page after page.
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(created, job_id))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = job_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(jobs=rows[:limit], next_cursor=next_cursor)


def job_state(session: Session, job_id: uuid.UUID) -> str | None:
    """The current state of a job, or None when there is no such job."""
    return session.scalar(select(Job.state).where(Job.id == job_id))


def mark_unpublished(session: Session, job_id: uuid.UUID) -> None:
    """Flag a queued job whose publish failed, so the next sweep publishes it."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
        .values(enqueued_at=NEVER_PUBLISHED)
        .execution_options(synchronize_session=False)
    )
