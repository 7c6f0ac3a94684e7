"""Run one job: claim it, pass its provider's guard, call it, record the attempt, move it on."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from integrations.base import Effect, Failed, JobContext, JobType, Outcome, Succeeded
from integrations.errors import (
    Cancelled,
    Deferred,
    IntegrationError,
    PermanentError,
    RateLimited,
    UnknownOutcome,
)
from integrations.exchanges import Exchange, recording
from integrations.guard import get_guard
from integrations.http import get_http_client
from integrations.registry import get_job_type
from store.db import Database, get_database
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
from store.payments import Effect as StoredEffect
from store.payments import first_key_at, record_effects, remember_key
from store.states import TERMINAL_STATES, AttemptOutcome, JobState
from store.types import utcnow
from tasks.backoff import compute_backoff
from tasks.notify import notify_finished
from tasks.policy import EffectivePolicy, stored_policy

log = structlog.get_logger(__name__)
HOST = socket.gethostname()


class Execution(StrEnum):
    """What the executor did with one delivery."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"
    NOT_CLAIMED = "not_claimed"
    LOST_LEASE = "lost_lease"


@dataclass(frozen=True)
class _Decision:
    state: JobState
    outcome: AttemptOutcome
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    http_status: int | None = None
    next_attempt_at: datetime | None = None
    retry_after_s: float | None = None
    counts: bool = True  # a deferral is not an attempt
    effects: tuple[Effect, ...] = ()


def _owner() -> str:
    # A fresh token per claim, so a lease reclaimed and re-taken is never confused with ours.
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, IntegrationError):
        return {
            "class": exc.error_class,
            "code": exc.code,
            "message": exc.message,
            "http_status": exc.http_status,
        }
    return {"class": "internal", "code": type(exc).__name__, "message": str(exc)[:500]}


def _decide_on_outcome(outcome: Outcome) -> _Decision:
    if isinstance(outcome, Succeeded):
        return _Decision(
            JobState.SUCCEEDED,
            AttemptOutcome.SUCCEEDED,
            outcome.result,
            None,
            outcome.http_status,
            effects=outcome.effects,
        )
    assert isinstance(outcome, Failed)
    error = {"class": "declined", "code": outcome.code, "message": outcome.message}
    error.update(outcome.details)
    return _Decision(JobState.FAILED, AttemptOutcome.FAILED, None, error, outcome.http_status)


def _decide_on_error(
    exc: BaseException,
    job: ClaimedJob,
    policy: EffectivePolicy,
    retry_unknown: bool,
    now: datetime,
) -> _Decision:
    if isinstance(exc, Deferred):
        error = {"class": "deferred", "code": "deferred", "message": str(exc)}
        wait = timedelta(seconds=exc.wait_s)
        if now + wait - _age_from(job) > timedelta(seconds=policy.max_age_s):
            error["reason"] = "max_age_exceeded"
            return _Decision(JobState.DEAD, AttemptOutcome.DEFERRED, None, error, None)
        return _Decision(
            JobState.RETRYING, AttemptOutcome.DEFERRED, None, error, None, now + wait, None, False
        )
    error = _error_body(exc)
    status = exc.http_status if isinstance(exc, IntegrationError) else None
    if isinstance(exc, Cancelled):
        error = {"class": "cancelled", "code": "cancelled", "message": str(exc)}
        return _Decision(JobState.CANCELLED, AttemptOutcome.CANCELLED, None, error, None)
    if isinstance(exc, PermanentError):
        return _Decision(JobState.FAILED, AttemptOutcome.FAILED, None, error, status)
    # A saved 5xx replayed under the key: every retry would only replay it; reconcile instead.
    replayed = isinstance(exc, UnknownOutcome) and exc.code == "replayed_server_error"
    if isinstance(exc, UnknownOutcome) and (not retry_unknown or replayed):
        return _Decision(JobState.NEEDS_REVIEW, AttemptOutcome.UNKNOWN, None, error, status)
    retry_after = exc.retry_after if isinstance(exc, IntegrationError) else None
    attempt = job.attempts + 1
    if attempt >= job.max_attempts:
        error["reason"] = "retries_exhausted"
        return _Decision(
            JobState.DEAD, AttemptOutcome.FAILED, None, error, status, None, retry_after
        )
    delay = compute_backoff(attempt, base=policy.base_s, cap=policy.cap_s, retry_after=retry_after)
    next_at = now + timedelta(seconds=delay)
    if next_at - _age_from(job) > timedelta(seconds=policy.max_age_s):
        error["reason"] = "max_age_exceeded"
        return _Decision(
            JobState.DEAD, AttemptOutcome.FAILED, None, error, status, None, retry_after
        )
    return _Decision(
        JobState.RETRYING, AttemptOutcome.RETRY, None, error, status, next_at, retry_after
    )


def _age_from(job: ClaimedJob) -> datetime:
    """Where a job's retry age is measured from: its submit, or its latest replay."""
    replayed = (job.retry_policy or {}).get("age_from")
    return datetime.fromisoformat(replayed) if replayed else job.created_at


def _breaker_verdict(exc: BaseException | None) -> bool | None:
    """True: the provider answered sanely; False: it looks down; None: says nothing about it."""
    if exc is None or isinstance(exc, PermanentError):
        return True
    if isinstance(exc, RateLimited | Deferred | Cancelled):
        return None
    if isinstance(exc, IntegrationError):
        return False
    return None


def _run(
    job_type: JobType[Any], job: ClaimedJob, settings: Settings, ctx: JobContext
) -> tuple[Outcome | None, BaseException | None]:
    guard = get_guard(settings)
    try:
        guard.admit(job_type.provider, job.tenant_id)
    except Deferred as exc:
        return None, exc
    try:
        outcome: Outcome | None = job_type.run(job.payload, ctx)
        error: BaseException | None = None
    except Exception as exc:
        outcome, error = None, exc
    verdict = _breaker_verdict(error)
    if verdict is not None:
        guard.record(job_type.provider, verdict)
    return outcome, error


def _excerpts(exchanges: list[Exchange]) -> tuple[str | None, str | None]:
    if not exchanges:
        return None, None
    last = exchanges[-1]
    return last.request, last.response


def execute(job_id: uuid.UUID, settings: Settings) -> Execution:
    """Run one delivery of `job_id`; safe to call for duplicates, which simply leave."""
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
        return Execution.NOT_CLAIMED
    log_ = log.bind(job_id=str(job_id), job_type=job.type, attempt=job.attempts + 1)
    policy = stored_policy(settings, job.retry_policy)
    job_type = get_job_type(job.type)
    clock = time.monotonic()
    with recording() as exchanges:
        if job_type is None:
            outcome: Outcome | None = None
            error: BaseException | None = PermanentError(
                f"unknown job type {job.type!r}", code="unknown_job_type"
            )
        else:
            provider = job_type.provider
            ctx = JobContext(
                job_id=job.id,
                attempt=job.attempts + 1,
                settings=settings,
                http=get_http_client(settings),
                deadline=clock + settings.attempt_deadline_s,
                cancel_requested=lambda: _cancel_requested(settings, job_id),
                key_store=lambda op, key: remember_key(db, job_id, op, provider, key)[0],
            )
            outcome, error = _run(job_type, job, settings, ctx)
    if error is None and outcome is not None:
        decision = _decide_on_outcome(outcome)
    else:
        assert error is not None
        retry_unknown = job_type.retry_unknown_outcome if job_type is not None else False
        decision = _decide_on_error(error, job, policy, retry_unknown, utcnow())
        if decision.state == JobState.RETRYING and job_type is not None:
            decision = _beyond_key_retention(decision, job_type, job, error, settings)
        log_.warning("job.attempt_error", error=decision.error, next_state=decision.state.value)
    request_excerpt, response_excerpt = _excerpts(exchanges)
    record = AttemptRecord(
        number=job.attempts + 1 if decision.counts else job.attempts,
        worker=owner,
        started_at=started_at,
        finished_at=utcnow(),
        outcome=decision.outcome.value,
        http_status=decision.http_status or (exchanges[-1].status if exchanges else None),
        latency_ms=int((time.monotonic() - clock) * 1000),
        error_class=(decision.error or {}).get("class"),
        error_message=(decision.error or {}).get("message"),
        next_attempt_at=decision.next_attempt_at,
        retry_after_s=decision.retry_after_s,
        request_excerpt=request_excerpt,
        response_excerpt=response_excerpt,
    )
    landed = _finish(db, job, owner, decision, record, job_type)
    if landed is None:
        log_.warning("job.lease_lost")
        return Execution.LOST_LEASE
    log_.info("job.attempt_finished", state=landed.state.value, latency_ms=record.latency_ms)
    if landed.notify and landed.state in TERMINAL_STATES:
        notify_finished(settings, job_id, landed.state.value)
    return Execution(landed.state.value)


def _finish(
    db: Database,
    job: ClaimedJob,
    owner: str,
    decision: _Decision,
    record: AttemptRecord,
    job_type: JobType[Any] | None,
) -> Landed | None:
    """Move the job on and write its ledger effects in one transaction.

    A second effect for an operation breaks a unique constraint: the job then goes to
    needs_review, loudly, instead of the duplicate being recorded silently.
    """
    provider = job_type.provider if job_type is not None else ""
    effects = [
        StoredEffect(
            provider, e.operation, e.provider_reference, e.payment_reference, e.amount, e.currency
        )
        for e in decision.effects
    ]
    try:
        if not effects:
            with db.connection() as conn:
                return _finish_in(conn, job.id, owner, decision, record)
        with db.session() as session:
            landed = _finish_in(session, job.id, owner, decision, record)
            if landed is not None:
                record_effects(session, job.id, job.tenant_id, effects)
            return landed
    except IntegrityError:
        log.error("job.duplicate_effect", job_id=str(job.id), effects=len(effects))
    review = replace(
        decision,
        state=JobState.NEEDS_REVIEW,
        error={
            "class": "duplicate_effect",
            "code": "duplicate_effect",
            "message": "the provider reported an effect the ledger already holds",
            "result": decision.result,
        },
        result=None,
        effects=(),
    )
    with db.session() as session:
        return _finish_in(session, job.id, owner, review, record)


def _finish_in(
    session: Runner, job_id: uuid.UUID, owner: str, decision: _Decision, record: AttemptRecord
) -> Landed | None:
    return finish_job(
        session,
        job_id,
        owner,
        state=decision.state,
        record=record,
        result=decision.result,
        error=decision.error,
        next_attempt_at=decision.next_attempt_at,
        count_attempt=decision.counts,
    )


def _beyond_key_retention(
    decision: _Decision,
    job_type: JobType[Any],
    job: ClaimedJob,
    error: BaseException,
    settings: Settings,
) -> _Decision:
    """Past the provider's key retention, an outcome we never learned is not retried blindly."""
    if job_type.key_retention is None:
        return decision
    db = get_database(settings)
    with db.session() as session:
        first = first_key_at(session, job.id)
        unknown_before = had_unknown_outcome(session, job.id)
    if first is None or not (isinstance(error, UnknownOutcome) or unknown_before):
        return decision
    margin = timedelta(seconds=settings.payment_key_margin_s)
    if utcnow() - first < job_type.key_retention - margin:
        return decision
    error_body = dict(decision.error or {})
    error_body["reason"] = "key_retention_passed"
    return replace(
        decision,
        state=JobState.NEEDS_REVIEW,
        outcome=AttemptOutcome.UNKNOWN,
        error=error_body,
        next_attempt_at=None,
    )


def _cancel_requested(settings: Settings, job_id: uuid.UUID) -> bool:
    with get_database(settings).session() as session:
        return cancel_requested(session, job_id)
