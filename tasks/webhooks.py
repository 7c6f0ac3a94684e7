"""Outbound webhooks on the worker side: the outbox a finishing job writes, and deliveries.

`Outbox.collect` runs inside the transaction that finishes a job (`tasks/executor.py`) and
writes its `job.*` and `payment.*` events with a delivery job per subscribed endpoint;
`Outbox.publish` sends those after the commit. `deliver` runs one delivery job: claim,
re-check the address, sign, POST pinned, `decide`, and finish the job with its attempt row
and the endpoint's health in one transaction. Delivery jobs bypass the provider guard: one
tenant's failing endpoint must not open a breaker for everyone; the per-endpoint slot cap
(`integrations/webhooks/slots.py`) bounds what a slow one can hold instead.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from integrations.base import RetryPolicy
from integrations.outbound import Resolver
from integrations.outcome import Failed, FailureKind, LedgerEffect, Outcome
from integrations.redact import redact, redact_text
from integrations.webhooks.delivery import Message, Sent, send
from integrations.webhooks.secrets import SecretBox, SecretUnreadable
from integrations.webhooks.slots import get_slots
from store.callbacks import callback_target
from store.db import get_database
from store.errors import JobError
from store.lifecycle import AttemptRecord, ClaimedJob, Runner, claim_job, finish_job
from store.models import Job
from store.outbox import (
    CALLBACK_JOB_TYPE,
    DELIVERY_JOB_TYPES,
    DELIVERY_QUEUE,
    HELD,
    DeliveryPolicy,
    NewEvent,
    subscribers,
    write_events,
)
from store.states import AttemptOutcome, ErrorClass, JobState
from store.types import utcnow
from store.webhooks import Target, delivery_target, record_health
from tasks.decide import (
    PENDING_SINCE,
    Attempted,
    AttemptFacts,
    Decision,
    Fault,
    NotAttempted,
    decide,
)
from tasks.metrics import observe_delivery
from tasks.policy import effective_policy, stored_policy
from tasks.publish import producer_app, publish_many

log = structlog.get_logger(__name__)
HOST = socket.gethostname()

JOB_EVENTS = {
    JobState.SUCCEEDED: "job.succeeded",
    JobState.FAILED: "job.failed",
    JobState.DEAD: "job.dead",
    JobState.NEEDS_REVIEW: "job.needs_review",
    JobState.CANCELLED: "job.cancelled",
}
PAYMENT_EVENTS = {
    "authorize": "payment.authorized",
    "charge": "payment.captured",
    "capture": "payment.captured",
    "refund": "payment.refunded",
    "void": "payment.voided",
}
EVENT_TYPES = frozenset({*JOB_EVENTS.values(), *PAYMENT_EVENTS.values()})
RESULT_KEYS_MAX = 20
RESULT_VALUE_MAX = 200
# A delivery that finds its endpoint's slots all taken comes back after about this long.
BUSY_WAIT_S = 0.5


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """Full-jitter backoff over about three days (`CONVEYOR_WEBHOOK_*`), within the caps."""
    policy = effective_policy(
        settings,
        RetryPolicy(
            max_attempts=settings.retry_max_attempts_cap,
            base_s=settings.webhook_backoff_base_s,
            cap_s=settings.webhook_backoff_cap_s,
            max_age_s=settings.webhook_retry_max_age_s,
        ),
    )
    return DeliveryPolicy(policy.as_dict(), policy.max_attempts)


def _summary(result: dict[str, Any] | None) -> dict[str, Any]:
    """The scalar top-level fields of a result, redacted and short: never a payload."""
    summary: dict[str, Any] = {}
    for key, value in (redact(result or {}) or {}).items():
        if key == PENDING_SINCE or len(summary) >= RESULT_KEYS_MAX:
            continue
        if isinstance(value, bool | int | float) or value is None:
            summary[key] = value
        elif isinstance(value, str):
            summary[key] = value[:RESULT_VALUE_MAX]
    return summary


def job_events(
    job: ClaimedJob, state: JobState, decision: Decision, now: datetime
) -> list[NewEvent]:
    """The events a job's end makes: `job.<state>` and one `payment.*` per ledger effect."""
    data: dict[str, Any] = {
        "job_id": str(job.id),
        "job_type": job.type,
        "state": state.value,
        "attempts": job.attempts + (1 if decision.counts else 0),
        "created_at": job.created_at.isoformat(),
        "finished_at": now.isoformat(),
    }
    if state is JobState.SUCCEEDED:
        data["result"] = _summary(decision.result)
    elif decision.error is not None:
        data["error"] = {"class": decision.error.error_class.value, "code": decision.error.code}
    events = [NewEvent(JOB_EVENTS[state], job.id, data, to_callback=True)]
    if state is JobState.SUCCEEDED:
        events.extend(payment_events(job.id, decision.effects))
    return events


def payment_events(job_id: uuid.UUID, effects: Sequence[LedgerEffect]) -> list[NewEvent]:
    """One `payment.*` event per ledger effect a job's end wrote."""
    return [
        NewEvent(
            PAYMENT_EVENTS.get(effect.operation, f"payment.{effect.operation}"),
            job_id,
            {
                "job_id": str(job_id),
                "operation": effect.operation,
                "payment_reference": effect.payment_reference,
                "reference": effect.provider_reference,
                "amount": effect.amount,
                "currency": effect.currency,
            },
        )
        for effect in effects
    ]


@dataclass
class Outbox:
    """Delivery jobs written by a finishing transaction, to publish once it has committed."""

    settings: Settings
    pending: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    def collect(self, runner: Runner, job: ClaimedJob, state: JobState, decision: Decision) -> None:
        """Inside the finishing transaction: write the job's events if it ended and the tenant
        has endpoints or the job a callback URL (one indexed lookup otherwise)."""
        if state not in JOB_EVENTS or job.type in DELIVERY_JOB_TYPES:
            return
        targets = subscribers(runner, job.tenant_id)
        if not targets and job.callback_url is None:
            return
        now = utcnow()
        events = job_events(job, state, decision, now)
        policy = delivery_policy(self.settings)
        self.pending.extend(
            write_events(runner, job.tenant_id, events, targets, policy, now, job.callback_url)
        )

    def collect_end(
        self, session: Session, job_id: uuid.UUID, effects: Sequence[LedgerEffect] = ()
    ) -> None:
        """The same for a job ended outside a worker's finish (a cancel, a lost worker's job
        gone `dead`, a payment settled by reconciliation with its ledger `effects`), read back
        inside the transaction that ended it."""
        row = session.execute(
            select(
                Job.tenant_id,
                Job.type,
                Job.state,
                Job.attempts,
                Job.created_at,
                Job.error,
                Job.result,
                Job.callback_url,
            ).where(Job.id == job_id)
        ).one_or_none()
        if row is None or row.state not in JOB_EVENTS or row.type in DELIVERY_JOB_TYPES:
            return
        targets = subscribers(session, row.tenant_id)
        if not targets and row.callback_url is None:
            return
        now = utcnow()
        data: dict[str, Any] = {
            "job_id": str(job_id),
            "job_type": row.type,
            "state": row.state,
            "attempts": row.attempts,
            "created_at": row.created_at.isoformat(),
            "finished_at": now.isoformat(),
        }
        if row.state == JobState.SUCCEEDED.value:
            data["result"] = _summary(row.result)
        elif row.error:
            data["error"] = {"class": row.error.get("class"), "code": row.error.get("code")}
        events = [NewEvent(JOB_EVENTS[JobState(row.state)], job_id, data, to_callback=True)]
        if row.state == JobState.SUCCEEDED.value:
            events.extend(payment_events(job_id, effects))
        policy = delivery_policy(self.settings)
        self.pending.extend(
            write_events(session, row.tenant_id, events, targets, policy, now, row.callback_url)
        )

    def publish(self) -> None:
        """After the commit: send the delivery jobs (one the broker misses, the sweeper sends)."""
        if self.pending:
            publish_deliveries(self.settings, self.pending)
            self.pending = []


def publish_deliveries(settings: Settings, jobs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Publish delivery jobs (id, type) to queue `webhooks`; failures are left to the sweeper."""
    publish_many(
        producer_app(settings), [(job_id, job_type, DELIVERY_QUEUE) for job_id, job_type in jobs]
    )


def event_body(target: Target) -> str:
    """The JSON body (Standard Webhooks shape: type, timestamp, data), the same on every try."""
    return json.dumps(
        {
            "type": target.event_type,
            "timestamp": target.event_created_at.isoformat(),
            "data": target.event_data,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def _age_from(job: ClaimedJob) -> datetime:
    replayed = (job.retry_policy or {}).get("age_from")
    return datetime.fromisoformat(replayed) if replayed else job.created_at


def _attempt(
    target: Target | None, settings: Settings, resolver: Resolver | None
) -> tuple[Attempted, Sent | None]:
    if target is None:
        gone = Failed("endpoint_deleted", "the endpoint was deleted", kind=FailureKind.PERMANENT)
        return gone, None
    if not target.enabled:
        return Failed(HELD.code, HELD.message, kind=FailureKind.PERMANENT), None
    if not target.secrets_sealed:
        missing = Failed(
            "callback_secret_missing",
            "the tenant has no callback signing secret (POST /v1/webhook-callbacks/secret)",
            kind=FailureKind.PERMANENT,
        )
        return missing, None
    try:
        secrets = [SecretBox(settings).open(sealed) for sealed in target.secrets_sealed]
    except SecretUnreadable as exc:
        error = JobError(ErrorClass.INTERNAL, "secret_unreadable", str(exc))
        return Fault(error), None
    with get_slots(settings).slot(target.slot_key) as taken:
        if not taken:
            return NotAttempted("endpoint_busy", BUSY_WAIT_S), None
        message = Message(str(target.event_id), event_body(target), secrets)
        sent = send(target.url, message, settings, resolver=resolver)
    if sent.outcome is not None:
        outcome: Outcome = sent.outcome
        return outcome, sent
    assert sent.retry is not None
    retry = sent.retry
    error = JobError(
        ErrorClass(retry.error_class),
        retry.code or retry.error_class,
        redact_text(retry.message),
        retry.http_status,
        retry.retry_after,
    )
    return Fault(error), sent


def _outcome_label(decision: Decision) -> str:
    """The metric's `outcome`: delivered · retrying · deferred (endpoint busy) · failed ·
    refused (address check) · held (endpoint disabled) · dead."""
    code = decision.error.code if decision.error is not None else ""
    if decision.state is JobState.SUCCEEDED:
        return "delivered"
    if decision.state is JobState.RETRYING:
        return "deferred" if decision.outcome is AttemptOutcome.DEFERRED else "retrying"
    if decision.state is JobState.FAILED and code.startswith("refused_"):
        return "refused"
    if decision.state is JobState.FAILED and code == HELD.code:
        return "held"
    return decision.state.value


def _target(runner: Runner, job: ClaimedJob, now: datetime) -> Target | None:
    if job.type == CALLBACK_JOB_TYPE:
        return callback_target(runner, job.id, now)
    return delivery_target(runner, job.id, now)


def deliver(job_id: uuid.UUID, settings: Settings, *, resolver: Resolver | None = None) -> str:
    """Run one try of delivery job `job_id`; returns the state it landed in.

    The attempt row keeps the status, latency and a redacted excerpt of the answer; the
    endpoint's failure streak (and its disabling, on 410 or a streak past
    `CONVEYOR_WEBHOOK_AUTO_DISABLE_AFTER_S`) is written in the same transaction.
    """
    db = get_database(settings)
    owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    started_at = utcnow()
    with db.connection() as conn:
        job = claim_job(conn, job_id, owner, timedelta(seconds=settings.lease_s), started_at)
        target = _target(conn, job, started_at) if job is not None else None
    if job is None:
        return "not_claimed"
    clock = time.monotonic()
    try:
        outcome, sent = _attempt(target, settings, resolver)
    except RedisError as exc:  # the slot set is unreachable: our failure, not the endpoint's
        error = JobError(ErrorClass.INFRASTRUCTURE, type(exc).__name__, redact_text(str(exc)))
        outcome, sent = Fault(error), None
    except Exception as exc:  # a bug of ours: end the attempt on the row, not in the lease
        log.exception("webhooks.delivery_crashed", job_id=str(job_id))
        error = JobError(ErrorClass.INTERNAL, type(exc).__name__, redact_text(str(exc))[:500])
        outcome, sent = Fault(error), None
    now = utcnow()
    facts = AttemptFacts(
        number=job.attempts + 1, max_attempts=job.max_attempts, age_from=_age_from(job)
    )
    decision = decide(outcome, facts, stored_policy(settings, job.retry_policy), None, now)
    record = AttemptRecord(
        number=job.attempts + 1 if decision.counts else job.attempts,
        worker=owner,
        started_at=started_at,
        finished_at=now,
        outcome=decision.outcome,
        http_status=sent.http_status if sent is not None else None,
        latency_ms=sent.latency_ms if sent is not None else int((time.monotonic() - clock) * 1000),
        error_class=decision.error.error_class if decision.error else None,
        error_message=decision.error.message if decision.error else None,
        next_attempt_at=decision.next_attempt_at,
        retry_after_s=decision.retry_after_s,
        request_excerpt=f"POST {redact_text(target.url)} webhook-id={target.event_id}"
        if target is not None
        else None,
        response_excerpt=sent.response_excerpt if sent is not None else None,
    )
    with db.connection() as conn:
        landed = finish_job(
            conn,
            job_id,
            owner,
            state=decision.state,
            record=record,
            result=decision.result,
            error=decision.error,
            next_attempt_at=decision.next_attempt_at,
            count_attempt=decision.counts,
        )
        disabled = None
        if (
            landed is not None
            and sent is not None
            and target is not None
            and target.endpoint_id is not None
        ):
            disabled = record_health(
                conn,
                target.endpoint_id,
                delivered=decision.state is JobState.SUCCEEDED,
                gone=sent.disable_endpoint,
                now=now,
                disable_after=timedelta(seconds=settings.webhook_auto_disable_after_s),
            )
    if disabled is not None:
        log.warning(
            "webhooks.endpoint_disabled",
            endpoint_id=str(target and target.endpoint_id),
            reason=disabled,
        )
    if landed is None:
        return "lost_lease"
    delivered = landed.state is JobState.SUCCEEDED and target is not None
    observe_delivery(
        "callback" if job.type == CALLBACK_JOB_TYPE else "endpoint",
        _outcome_label(decision),
        (now - target.event_created_at).total_seconds() if delivered and target else None,
    )
    log.info(
        "webhooks.delivery_attempt",
        job_id=str(job_id),
        state=landed.state.value,
        http_status=record.http_status,
        latency_ms=record.latency_ms,
        error=decision.error.code if decision.error else None,
    )
    return landed.state.value
