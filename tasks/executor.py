"""Run one job: claim it, pass its provider's guard, call it, record the attempt, move it on.

The route from "a provider answered" to "a row says what happened" (docs/design.md §4): the
HTTP client raises only transport errors; the provider's `classify` reads its answers; the
handler returns a typed outcome (or raises an `IntegrationError`, classified where it was
raised); `_attempted` turns an exception into a `Fault` without judging it again; the pure
`decide` picks the next state; `_finish` writes it, the attempt row and the ledger effects in
one transaction.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from config.settings import Settings
from integrations.base import JobContext, JobType
from integrations.errors import Cancelled, Deferred, IntegrationError
from integrations.exchanges import Exchange, recording
from integrations.guard import get_guard
from integrations.http import get_http_client
from integrations.redact import redact_text
from integrations.registry import get_job_type
from store.db import Database, get_database
from store.errors import JobError
from store.jobs import job_state
from store.lifecycle import (
    AttemptRecord,
    ClaimedJob,
    Landed,
    Runner,
    cancel_requested,
    claim_job,
    finish_job,
    had_unknown_outcome,
    record_duplicate,
)
from store.payments import (
    LedgerInvariantBroken,
    first_key_at,
    record_effects,
    remember_key,
)
from store.provider_events import event_payloads
from store.states import TERMINAL_STATES, AttemptOutcome, ErrorClass, JobState
from store.types import utcnow
from tasks.data_sync import sync_store_for
from tasks.decide import (
    PENDING_SINCE,
    Attempted,
    AttemptFacts,
    Decision,
    Fault,
    KeyAge,
    NotAttempted,
    Stopped,
    decide,
)
from tasks.metrics import DUPLICATE_DELIVERIES, observe_attempt, observe_deferral
from tasks.notify import notify_finished
from tasks.policy import stored_policy
from tasks.webhooks import Outbox

log = structlog.get_logger(__name__)
HOST = socket.gethostname()
MESSAGE_MAX = 500
# Writing an attempt's end is retried while the database is briefly away, within the lease.
FINISH_RETRY_FIRST_S = 0.2
FINISH_RETRY_MAX_S = 2.0
FINISH_LEASE_MARGIN_S = 1.0


class Execution(StrEnum):
    """What the executor did with one delivery."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    AWAITING_PROVIDER = "awaiting_provider"
    DEAD = "dead"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"
    NOT_CLAIMED = "not_claimed"
    LOST_LEASE = "lost_lease"


def _owner() -> str:
    # A fresh token per claim, so a lease reclaimed and re-taken is never confused with ours.
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _attempted(
    exc: BaseException, job_type: JobType[Any] | None, exchanges: list[Exchange]
) -> Attempted:
    """The typed outcome of an attempt that raised; the class is the raiser's, not judged again."""
    if isinstance(exc, Deferred):
        return NotAttempted(exc.reason, exc.wait_s)
    if isinstance(exc, Cancelled):
        return Stopped(exc.step)
    if isinstance(exc, IntegrationError):
        return Fault(
            JobError(
                _error_class(exc.error_class),
                exc.code or exc.error_class,
                redact_text(exc.message)[:MESSAGE_MAX],
                exc.http_status,
                exc.retry_after,
            ),
            provider_fault=exc.provider_fault,
        )
    message = redact_text(str(exc))[:MESSAGE_MAX]
    if isinstance(exc, SQLAlchemyError | RedisError):
        # Our database or Redis failed under a live worker: not the provider, not a lost worker.
        return Fault(JobError(ErrorClass.INFRASTRUCTURE, type(exc).__name__, message))
    answered = [e.status for e in exchanges if e.status is not None and 200 <= e.status < 300]
    if job_type is not None and job_type.effectful and answered:
        # The provider said yes and we could not read it: money may have moved (I2).
        return Fault(
            JobError(
                ErrorClass.UNKNOWN_OUTCOME,
                "unreadable_answer",
                f"the provider answered {answered[-1]} and the answer could not be read: "
                f"{type(exc).__name__}: {message}",
                answered[-1],
            )
        )
    return Fault(JobError(ErrorClass.INTERNAL, type(exc).__name__, message))


def _error_class(name: str) -> ErrorClass:
    try:
        return ErrorClass(name)
    except ValueError:
        return ErrorClass.INTERNAL


def _breaker_verdict(outcome: Attempted) -> bool | None:
    """True: the provider answered sanely; False: it looks down; None: says nothing about it."""
    if not isinstance(outcome, Fault):
        return None if isinstance(outcome, NotAttempted | Stopped) else True
    if not outcome.provider_fault:
        return None  # e.g. our own deadline ran out before anything was sent
    error_class = outcome.error.error_class
    if error_class in (ErrorClass.TRANSIENT, ErrorClass.UNKNOWN_OUTCOME):
        return False
    if error_class is ErrorClass.PERMANENT:
        return True
    return None


def _run(
    job_type: JobType[Any], job: ClaimedJob, settings: Settings, ctx: JobContext
) -> tuple[Attempted, list[Exchange]]:
    guard = get_guard(settings)
    try:
        guard.admit(job_type.provider, job.tenant_id)
    except Deferred as exc:
        observe_deferral(job_type.provider, exc.cause)
        return NotAttempted(exc.reason, exc.wait_s), []
    with recording() as exchanges:
        try:
            if _pending(job) is not None:
                outcome: Attempted = job_type.settle_pending(job.payload, ctx, job.result or {})
            else:
                outcome = job_type.run(job.payload, ctx)
        except Exception as exc:
            outcome = _attempted(exc, job_type, exchanges)
    verdict = _breaker_verdict(outcome)
    if verdict is not None:
        guard.record(job_type.provider, verdict)
    return outcome, exchanges


def _pending(job: ClaimedJob) -> datetime | None:
    """When the provider first answered pending, for a job that awaits it; else None."""
    since = (job.result or {}).get(PENDING_SINCE)
    return datetime.fromisoformat(since) if isinstance(since, str) else None


def _age_from(job: ClaimedJob) -> datetime:
    """Where a job's retry age is measured from: its submit, or its latest replay."""
    replayed = (job.retry_policy or {}).get("age_from")
    return datetime.fromisoformat(replayed) if replayed else job.created_at


def _key_age(
    db: Database, job_type: JobType[Any], job: ClaimedJob, settings: Settings, now: datetime
) -> KeyAge | None:
    """How old the job's provider keys are; loaded only where a failure makes it matter."""
    if job_type.key_retention is None:
        return None
    with db.session() as session:
        first = first_key_at(session, job.id)
        unknown_before = had_unknown_outcome(session, job.id)
    if first is None:
        return None
    return KeyAge(
        age=now - first,
        retention=job_type.key_retention,
        margin=timedelta(seconds=settings.payment_key_margin_s),
        unknown_before=unknown_before,
    )


def _context(
    db: Database, job: ClaimedJob, job_type: JobType[Any], settings: Settings, clock: float
) -> JobContext:
    provider = job_type.provider
    job_id = job.id
    lookup_first = False
    if job_type.lookup_by_key and job.attempts > 0:
        # Within the key's retention a resend is answered from the provider's saved response;
        # past it (a manual retry or replay of an old job) the key may be forgotten: look first.
        key_age = _key_age(db, job_type, job, settings, utcnow())
        lookup_first = key_age is not None and key_age.unknown_before and key_age.past_retention
    return JobContext(
        job_id=job_id,
        attempt=job.attempts + 1,
        settings=settings,
        http=get_http_client(settings),
        deadline=clock + settings.attempt_deadline_s,
        cancel_requested=lambda: _cancel_requested(settings, job_id),
        key_store=lambda op, key: remember_key(db, job_id, op, provider, key)[0],
        lookup_first=lookup_first,
        provider_events=lambda reference: _events(db, provider, reference),
        data=sync_store_for(db, settings, job.tenant_id, job_id),
    )


def execute(job_id: uuid.UUID, settings: Settings) -> Execution:
    """Run one delivery of `job_id`; safe to call for duplicates, which simply leave.

    The attempt's log context (job id, correlation id, tenant) is bound for its duration only:
    pool threads are reused, and nothing logged after it may carry this job's ids.
    """
    structlog.contextvars.clear_contextvars()
    try:
        return _execute(job_id, settings)
    finally:
        structlog.contextvars.clear_contextvars()


def _execute(job_id: uuid.UUID, settings: Settings) -> Execution:
    db = get_database(settings)
    owner = _owner()
    started_at = utcnow()
    with db.connection() as conn:
        job = claim_job(conn, job_id, owner, timedelta(seconds=settings.lease_s), started_at)
    if job is None:
        with db.session() as session:
            state = job_state(session, job_id)
            if state is not None:
                record_duplicate(session, job_id, owner, started_at)
        log.info("job.duplicate_delivery", job_id=str(job_id), state=state)
        DUPLICATE_DELIVERIES.inc()
        return Execution.NOT_CLAIMED
    # Every log line of this attempt, ours and the providers', carries the job and its request.
    structlog.contextvars.bind_contextvars(
        job_id=str(job_id), correlation_id=job.correlation_id, tenant=str(job.tenant_id)
    )
    log_ = log.bind(job_type=job.type, attempt=job.attempts + 1)
    policy = stored_policy(settings, job.retry_policy)
    job_type = get_job_type(job.type)
    clock = time.monotonic()
    exchanges: list[Exchange] = []
    if job_type is None:
        outcome: Attempted = Fault(
            JobError(ErrorClass.PERMANENT, "unknown_job_type", f"unknown job type {job.type!r}")
        )
    else:
        try:
            ctx = _context(db, job, job_type, settings, clock)
            outcome, exchanges = _run(job_type, job, settings, ctx)
        except (SQLAlchemyError, RedisError) as exc:
            outcome = _attempted(exc, job_type, exchanges)
    now = utcnow()
    facts = AttemptFacts(
        number=job.attempts + 1,
        max_attempts=job.max_attempts,
        age_from=_age_from(job),
        retry_unknown=job_type.retry_unknown_outcome if job_type is not None else False,
        pending_since=_pending(job),
        poll_s=settings.provider_poll_s,
        awaiting_max_s=settings.awaiting_provider_max_s,
    )
    key_age = None
    if isinstance(outcome, Fault) and job_type is not None:
        key_age = _key_age(db, job_type, job, settings, now)
    decision = decide(outcome, facts, policy, key_age, now)
    if decision.error is not None and decision.state is not JobState.SUCCEEDED:
        log_.warning(
            "job.attempt_error",
            error_class=decision.error.error_class.value,
            code=decision.error.code,
            next_state=decision.state.value,
        )
    last = exchanges[-1] if exchanges else None
    record = AttemptRecord(
        number=job.attempts + 1 if decision.counts else job.attempts,
        worker=owner,
        started_at=started_at,
        finished_at=utcnow(),
        outcome=decision.outcome,
        http_status=decision.http_status or (last.status if last else None),
        latency_ms=int((time.monotonic() - clock) * 1000),
        error_class=decision.error.error_class if decision.error else None,
        error_message=decision.error.message if decision.error else None,
        next_attempt_at=decision.next_attempt_at,
        retry_after_s=decision.retry_after_s,
        request_excerpt=last.request if last else None,
        response_excerpt=last.response if last else None,
    )
    lease_ends = clock + settings.lease_s
    outbox = Outbox(settings)
    landed = _finish_within_lease(db, job, owner, decision, record, job_type, outbox, lease_ends)
    outbox.publish()
    if landed is None:
        log_.warning("job.lease_lost")
        return Execution.LOST_LEASE
    log_.info("job.attempt_finished", state=landed.state.value, latency_ms=record.latency_ms)
    observe_attempt(
        queue=job_type.queue if job_type is not None else "unknown",
        provider=job_type.provider if job_type is not None else "unknown",
        outcome=decision.outcome.value,
        latency_s=record.latency_ms / 1000,
        job_type=job.type,
        state=landed.state.value,
        tenant=str(job.tenant_id),
        terminal=landed.state in TERMINAL_STATES,
    )
    if landed.notify and landed.state in TERMINAL_STATES:
        notify_finished(settings, job_id, landed.state.value)
    return Execution(landed.state.value)


def _finish_within_lease(
    db: Database,
    job: ClaimedJob,
    owner: str,
    decision: Decision,
    record: AttemptRecord,
    job_type: JobType[Any] | None,
    outbox: Outbox,
    lease_ends: float,
) -> Landed | None:
    """`_finish`, tried again while the database is briefly unreachable and the lease holds.

    A live worker that cannot write its attempt's end for a moment must not leave its job to
    the sweeper, which would record a lost worker and count a delivery: it keeps trying,
    with short growing waits, until the lease (monotonic `lease_ends`) is nearly over.
    """
    wait_s = FINISH_RETRY_FIRST_S
    while True:
        outbox.pending.clear()  # a rolled-back try took its deliveries with it
        try:
            return _finish(db, job, owner, decision, record, job_type, outbox)
        except DBAPIError as exc:
            left = lease_ends - FINISH_LEASE_MARGIN_S - time.monotonic()
            log.warning(
                "job.finish_retry",
                job_id=str(job.id),
                error=type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
                retry_in_s=round(min(wait_s, max(left, 0)), 2),
            )
            if left <= 0:
                raise
            time.sleep(min(wait_s, left))
            wait_s = min(wait_s * 2, FINISH_RETRY_MAX_S)


def _finish(
    db: Database,
    job: ClaimedJob,
    owner: str,
    decision: Decision,
    record: AttemptRecord,
    job_type: JobType[Any] | None,
    outbox: Outbox,
) -> Landed | None:
    """Move the job on and write its ledger effects and webhook events in one transaction.

    A second effect for an operation breaks a unique constraint, and a refund past the
    captured amount breaks the ledger's invariant: the job then goes to needs_review, loudly,
    instead of the effect being recorded silently.
    """
    provider = job_type.provider if job_type is not None else ""
    # A refund that ends without effect lets go of its hold by its state alone
    # (store/payments.held_for_refunds); one that lands releases it with its ledger row.
    try:
        if not decision.effects:
            with db.connection() as conn:
                return _finish_in(conn, job, owner, decision, record, outbox)
        with db.session() as session:
            landed = _finish_in(session, job, owner, decision, record, outbox)
            if landed is not None:
                record_effects(session, job.id, job.tenant_id, provider, decision.effects)
            return landed
    except (IntegrityError, LedgerInvariantBroken) as exc:
        log.error("job.duplicate_effect", job_id=str(job.id), error=type(exc).__name__)
    review = replace(
        decision,
        state=JobState.NEEDS_REVIEW,
        outcome=AttemptOutcome.UNKNOWN,
        error=JobError(
            ErrorClass.DUPLICATE_EFFECT,
            "duplicate_effect",
            "the provider reported an effect the ledger already holds, or one it cannot hold",
            details={"result": decision.result},
        ),
        result=None,
        effects=(),
    )
    with db.session() as session:
        outbox.pending.clear()  # the rolled-back transaction took its deliveries with it
        return _finish_in(session, job, owner, review, record, outbox)


def _finish_in(
    session: Runner,
    job: ClaimedJob,
    owner: str,
    decision: Decision,
    record: AttemptRecord,
    outbox: Outbox,
) -> Landed | None:
    landed = finish_job(
        session,
        job.id,
        owner,
        state=decision.state,
        record=record,
        result=decision.result,
        error=decision.error,
        next_attempt_at=decision.next_attempt_at,
        count_attempt=decision.counts,
    )
    if landed is not None:
        outbox.collect(session, job, landed.state, decision)
    return landed


def _cancel_requested(settings: Settings, job_id: uuid.UUID) -> bool:
    with get_database(settings).session() as session:
        return cancel_requested(session, job_id)


def _events(db: Database, provider: str, reference: str) -> list[dict[str, Any]]:
    with db.session() as session:
        return event_payloads(session, provider, reference)
