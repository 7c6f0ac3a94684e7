"""What an operator does to jobs of any tenant: replay a group, retry, cancel; each audited.

Shared by the console (`/ops`) and the CLI (`conveyor jobs …`). Every action writes an audit
row under the job's tenant (so the tenant's own audit log shows what operators did to its
jobs) naming the actor: the operator's API key, or `cli:<user>`. A payment whose outcome is unknown
and whose provider may have forgotten its key is withheld from replay (`forgotten_outcome`).
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
from store.replay import REPLAYABLE_STATES, audit, replay_job
from store.states import JobState
from store.types import utcnow
from tasks.notify import notify_finished
from tasks.policy import stored_policy
from tasks.providers import close_breaker
from tasks.publish import producer_app, publish
from tasks.replay_guard import forgotten_outcome

REPLAY_LIMIT = 1000


@dataclass(frozen=True)
class ReplayOutcome:
    """A group replay: how many matched, which were replayed and which withheld."""

    matched: int
    replayed: list[uuid.UUID] = field(default_factory=list)
    withheld: list[uuid.UUID] = field(default_factory=list)
    sample: list[Job] = field(default_factory=list)


def replayable(flt: OpsFilter) -> bool:
    """True when the filter names a replayable state (dead, failed, needs_review)."""
    return flt.state in {s.value for s in REPLAYABLE_STATES}


def dry_run(db: Database, flt: OpsFilter) -> ReplayOutcome:
    """How many jobs a replay of this filter would send round again (nothing changes)."""
    with db.session() as session:
        matches = [job for job, _ in find_jobs(session, flt, REPLAY_LIMIT)]
        session.expunge_all()
    return ReplayOutcome(matched=len(matches), sample=matches[:20])


def replay_group(db: Database, settings: Settings, flt: OpsFilter, actor: str) -> ReplayOutcome:
    """Replay every job matching the filter (up to REPLAY_LIMIT), audited per tenant."""
    now = utcnow()
    replayed: list[tuple[uuid.UUID, str, str]] = []
    withheld: list[uuid.UUID] = []
    with db.session() as session:
        matches = [job for job, _ in find_jobs(session, flt, REPLAY_LIMIT)]
        by_tenant: dict[uuid.UUID, list[str]] = {}
        for job in matches:
            if forgotten_outcome(session, job, settings):
                withheld.append(job.id)
                continue
            extra = stored_policy(settings, job.retry_policy).max_attempts
            if replay_job(session, job.id, job.tenant_id, extra, now):
                replayed.append((job.id, job.type, job.queue))
                by_tenant.setdefault(job.tenant_id, []).append(str(job.id))
        for tenant_id, ids in by_tenant.items():
            audit(
                session,
                tenant_id,
                actor,
                "ops.replay",
                {
                    "filter": {k: v for k, v in vars(flt).items() if v},
                    "matched": len(matches),
                    "replayed": ids,
                    "withheld": [str(i) for i in withheld],
                },
            )
    _publish(db, settings, replayed)
    return ReplayOutcome(len(matches), [r[0] for r in replayed], withheld)


def retry(db: Database, settings: Settings, job_id: uuid.UUID, actor: str) -> str:
    """Queue one dead, failed or needs_review job again; returns what happened, audited."""
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "no such job"
        if forgotten_outcome(session, job, settings):
            return "withheld: the outcome is unknown and the provider may have forgotten the key"
        extra = stored_policy(settings, job.retry_policy).max_attempts
        if not replay_job(session, job_id, job.tenant_id, extra, utcnow()):
            return f"a {job.state} job cannot be retried"
        audit(session, job.tenant_id, actor, "ops.retry", {}, job_id=job_id)
        target = (job_id, job.type, job.queue)
    _publish(db, settings, [target])
    return "queued again"


def cancel(db: Database, settings: Settings, job_id: uuid.UUID, actor: str) -> str:
    """Cancel a waiting job, or ask a running one to stop; returns what happened, audited."""
    with db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "no such job"
        tenant_id = job.tenant_id
        outcome = cancel_job(session, job_id, tenant_id, utcnow())
        if outcome in (CancelResult.CANCELLED, CancelResult.REQUESTED):
            audit(
                session,
                tenant_id,
                actor,
                "ops.cancel",
                {"result": outcome.value},
                job_id=job_id,
            )
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
