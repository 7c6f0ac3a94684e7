"""What an operator does to jobs of any tenant: replay a group, retry, cancel; each audited.

Shared by the console (`/ops`) and the CLI (`conveyor jobs …`). Every action writes an audit
row under the job's tenant (so the tenant's own audit log shows what operators did to its
jobs) naming the actor: the operator's API key, or `cli:<user>`, and only that tenant's jobs.
A job `replay_refusal` refuses (an unknown outcome past key retention, a refund its payment no
longer covers) is withheld, by the dry run and the replay alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from config.settings import Settings
from store.db import Database
from store.jobs import mark_unpublished
from store.lifecycle import CancelResult, cancel_job
from store.models import Job
from store.ops import OpsFilter, find_jobs
from store.payment_claims import PaymentRefused, lock_payments_held_by
from store.replay import REPLAYABLE_STATES, audit, replay_job
from store.states import JobState
from store.types import utcnow
from tasks.notify import notify_finished
from tasks.policy import stored_policy
from tasks.providers import close_breaker
from tasks.publish import producer_app, publish
from tasks.replay_guard import Refusal, replay_refusal
from tasks.webhooks import Outbox

REPLAY_LIMIT = 1000


@dataclass(frozen=True)
class ReplayOutcome:
    """A group replay: how many matched, which were replayed and which withheld."""

    matched: int
    replayed: list[uuid.UUID] = field(default_factory=list)
    withheld: list[uuid.UUID] = field(default_factory=list)
    sample: list[Job] = field(default_factory=list)
    reasons: dict[uuid.UUID, Refusal] = field(default_factory=dict)  # why each was withheld


def replayable(flt: OpsFilter) -> bool:
    """True when the filter names a replayable state (dead, failed, needs_review)."""
    return flt.state in {s.value for s in REPLAYABLE_STATES}


def dry_run(db: Database, settings: Settings, flt: OpsFilter) -> ReplayOutcome:
    """What a replay of this filter would do: which jobs it would queue and which withhold."""
    with db.session() as session:
        matches = [job for job, _ in find_jobs(session, flt, REPLAY_LIMIT)]
        reasons = {}
        for job in matches:
            refusal = replay_refusal(session, job, settings)
            if refusal is not None:
                reasons[job.id] = refusal
        session.expunge_all()
    would = [job.id for job in matches if job.id not in reasons]
    return ReplayOutcome(len(matches), would, list(reasons), matches[:20], reasons)


def replay_group(db: Database, settings: Settings, flt: OpsFilter, actor: str) -> ReplayOutcome:
    """Replay every job matching the filter (up to REPLAY_LIMIT), audited per tenant.

    Each tenant's audit row names only that tenant's jobs, replayed and withheld.
    """
    now = utcnow()
    replayed: list[tuple[uuid.UUID, str, str]] = []
    reasons: dict[uuid.UUID, Refusal] = {}
    with db.session() as session:
        matches = [job for job, _ in find_jobs(session, flt, REPLAY_LIMIT)]
        lock_payments_held_by(session, [job.id for job in matches])  # batch order: no deadlock
        by_tenant: dict[uuid.UUID, dict[str, list[str]]] = {}
        for job in matches:
            seen = by_tenant.setdefault(job.tenant_id, {"replayed": [], "withheld": []})
            refusal = replay_refusal(session, job, settings)
            if refusal is None:
                extra = stored_policy(settings, job.retry_policy).max_attempts
                try:
                    if replay_job(session, job.id, job.tenant_id, extra, now):
                        replayed.append((job.id, job.type, job.queue))
                        seen["replayed"].append(str(job.id))
                except PaymentRefused as exc:  # the balance changed since it was read
                    refusal = Refusal.of(exc)
            if refusal is not None:
                reasons[job.id] = refusal
                seen["withheld"].append(str(job.id))
        for tenant_id, seen in by_tenant.items():
            if not seen["replayed"] and not seen["withheld"]:
                continue
            audit(
                session,
                tenant_id,
                actor,
                "ops.replay",
                {
                    "filter": {k: v for k, v in vars(flt).items() if v},
                    "matched": len(seen["replayed"]) + len(seen["withheld"]),
                    "replayed": seen["replayed"],
                    "withheld": seen["withheld"],
                },
            )
    _publish(db, settings, replayed)
    return ReplayOutcome(len(matches), [r[0] for r in replayed], list(reasons), [], reasons)


def retry(db: Database, settings: Settings, job_id: uuid.UUID, actor: str) -> str:
    """Queue one dead, failed or needs_review job again; returns what happened, audited."""
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "no such job"
        refusal = replay_refusal(session, job, settings)
        if refusal is not None:
            return f"withheld: {refusal.message}"
        extra = stored_policy(settings, job.retry_policy).max_attempts
        try:
            again = replay_job(session, job_id, job.tenant_id, extra, utcnow())
        except PaymentRefused as exc:
            return f"withheld: {exc.message}"
        if not again:
            return f"a {job.state} job cannot be retried"
        audit(session, job.tenant_id, actor, "ops.retry", {}, job_id=job_id)
        target = (job_id, job.type, job.queue)
    _publish(db, settings, [target])
    return "queued again"


def cancel(db: Database, settings: Settings, job_id: uuid.UUID, actor: str) -> str:
    """Cancel a waiting job, or ask a running one to stop; returns what happened, audited.

    A job cancelled here writes its `job.cancelled` event in the same transaction, as a
    cancel through the API does (the outbox, `docs/design.md §8`).
    """
    outbox = Outbox(settings)
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "no such job"
        tenant_id = job.tenant_id
        outcome = cancel_job(session, job_id, tenant_id, utcnow())
        if outcome is CancelResult.CANCELLED:
            outbox.collect_end(session, job_id)
        if outcome in (CancelResult.CANCELLED, CancelResult.REQUESTED):
            audit(
                session,
                tenant_id,
                actor,
                "ops.cancel",
                {"result": outcome.value},
                job_id=job_id,
            )
    outbox.publish()
    if outcome is CancelResult.CANCELLED:
        notify_finished(settings, job_id, JobState.CANCELLED.value)
        return "cancelled"
    if outcome is CancelResult.REQUESTED:
        return "cancel requested: the running attempt stops at its next checkpoint"
    return "already finished: nothing to cancel"


def close_provider_breaker(
    db: Database, settings: Settings, provider: str, actor: str, actor_tenant: uuid.UUID
) -> None:
    """Close a provider's breaker by hand, audited under the actor's own tenant."""
    close_breaker(settings, provider)
    with db.session() as session:
        audit(session, actor_tenant, actor, "ops.breaker_close", {"provider": provider})


def _publish(db: Database, settings: Settings, jobs: list[tuple[uuid.UUID, str, str]]) -> None:
    app = producer_app(settings)
    for job_id, job_type, queue in jobs:
        if not publish(app, job_id, job_type, queue):
            with db.session() as session:
                mark_unpublished(session, job_id)
