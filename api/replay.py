"""Dead letters: retry one finished job, replay many by filter (with a dry run), audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DatabaseDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.inputs import Flag, Text, UtcDatetime
from api.jobs import parse_job_id
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from api.payment_rules import outcome_unknown, refused
from api.quota import OpenJobQuota
from api.schemas import JobOut
from api.screening import screen
from config.settings import Settings
from store.db import Database
from store.jobs import get_job, mark_unpublished
from store.payment_claims import PaymentRefused, lock_payments_held_by
from store.replay import ReplayFilter, audit, audit_events, matching_jobs, replay_job
from store.states import JobState
from store.types import utcnow
from tasks.policy import stored_policy
from tasks.publish import producer_app, publish
from tasks.replay_guard import NOT_REPLAYABLE, OUTCOME_UNKNOWN, Refusal, replay_refusal

router = APIRouter(tags=["dead letters"], route_class=JsonBodyRoute)

REPLAY_LIMIT_MAX = 1000


class ReplayFilterIn(BaseModel):
    """Which finished jobs to replay."""

    model_config = ConfigDict(extra="forbid")

    states: list[JobState] = Field(
        default_factory=lambda: [JobState.DEAD],
        min_length=1,
        description="dead, failed or needs_review",
    )
    type: Text | None = None
    error_class: Text | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None


class ReplayRequest(BaseModel):
    """Replay by filter; `dry_run` counts without changing anything."""

    model_config = ConfigDict(extra="forbid")

    filter: ReplayFilterIn = Field(default_factory=ReplayFilterIn)
    dry_run: Flag = False
    # Also replay payments whose outcome is unknown and whose key the provider may have
    # forgotten; without it they are left out and listed in `withheld`.
    force: Flag = False
    limit: int = Field(default=100, ge=1, le=REPLAY_LIMIT_MAX, strict=True)


class WithheldOut(BaseModel):
    """A job the replay leaves out, and why."""

    id: str
    code: str = Field(description="outcome_unknown or refund_exceeds_captured")
    message: str
    details: dict[str, object]


class ReplayResult(BaseModel):
    """What a replay matched and what it re-queued (a dry run: what it would)."""

    dry_run: bool
    matched: int
    replayed: int
    job_ids: list[str] = Field(description="re-queued (a dry run: would be re-queued)")
    withheld: list[str] = Field(
        default_factory=list,
        description="jobs left out (a dry run: would be left out); `withheld_reasons` says why",
    )
    withheld_reasons: list[WithheldOut] = Field(default_factory=list)


class AuditEventOut(BaseModel):
    """One recorded operator action."""

    id: str
    actor: str
    action: str
    job_id: str | None
    details: dict[str, object]
    created_at: datetime


@router.post(
    "/v1/jobs/replay",
    response_model=ReplayResult,
    responses=error_responses(422),
)
def replay_many(
    body: ReplayRequest,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> ReplayResult:
    """Re-queue the tenant's finished jobs matching the filter, keeping their ids and keys.

    The re-queued jobs count against the tenant's quota of unfinished jobs like a batch
    submit: a replay that would cross it is `429 quota_exceeded` and re-queues none.
    """
    bad = [s for s in body.filter.states if s not in {"dead", "failed", "needs_review"}]
    if bad:
        raise ApiError(
            422,
            "not_replayable",
            "only dead, failed and needs_review jobs can be replayed",
            {"loc": ["body", "filter", "states"], "states": bad},
        )
    screen(body.filter.model_dump(mode="json"), ("body", "filter"))  # stored in the audit row
    flt = ReplayFilter(
        states=frozenset(body.filter.states),
        type=body.filter.type,
        error_class=body.filter.error_class,
        created_after=body.filter.created_after,
        created_before=body.filter.created_before,
    )
    replayed: list[uuid.UUID] = []
    withheld: dict[uuid.UUID, Refusal] = {}
    now = utcnow()
    extra = stored_policy(settings, None).max_attempts
    with db.session() as session:
        matches = matching_jobs(session, principal.tenant_id, flt, body.limit)
        if not body.dry_run:
            lock_payments_held_by(session, [job_id for job_id, _, _ in matches])
        for job_id, _, _ in matches:
            job = get_job(session, job_id, principal.tenant_id)
            if job is None:
                continue
            # One rule for the dry run and the replay (tasks/replay_guard.replay_refusal).
            refusal = replay_refusal(session, job, settings, force=body.force)
            if refusal is None and not body.dry_run:
                try:
                    if replay_job(session, job_id, principal.tenant_id, extra, now):
                        replayed.append(job_id)
                except PaymentRefused as exc:  # the balance changed since it was read
                    refusal = Refusal.of(exc)
            elif refusal is None:
                replayed.append(job_id)
            if refusal is not None:
                withheld[job_id] = refusal
        if body.dry_run:
            session.rollback()
            return _result(True, len(matches), replayed, withheld)
        if replayed:  # raising here rolls every re-queue of this replay back
            _quota(request).admit(db, principal.tenant_id, len(replayed))
        audit(
            session,
            principal.tenant_id,
            principal.actor,
            "jobs.replay",
            {
                "filter": body.filter.model_dump(mode="json"),
                "matched": len(matches),
                "replayed": [str(i) for i in replayed],
                "withheld": [str(i) for i in withheld],
                "force": body.force,
            },
        )
    types = {job_id: (job_type, queue) for job_id, job_type, queue in matches}
    _publish_all(db, settings, [(i, *types[i]) for i in replayed])
    return _result(False, len(matches), replayed, withheld)


def _result(
    dry_run: bool, matched: int, replayed: list[uuid.UUID], withheld: dict[uuid.UUID, Refusal]
) -> ReplayResult:
    return ReplayResult(
        dry_run=dry_run,
        matched=matched,
        replayed=0 if dry_run else len(replayed),
        job_ids=[str(i) for i in replayed],
        withheld=[str(i) for i in withheld],
        withheld_reasons=[
            WithheldOut(id=str(i), code=r.code, message=r.message, details=r.details)
            for i, r in withheld.items()
        ],
    )


class RetryRequest(BaseModel):
    """Optional body of a retry: `force` re-sends a payment whose outcome is unknown."""

    model_config = ConfigDict(extra="forbid")

    force: Flag = False


@router.post(
    "/v1/jobs/{job_id}/retry",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(404, 409),
)
def retry_one(
    job_id: str,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    body: RetryRequest | None = None,
) -> JobOut:
    """Re-queue one dead, failed or needs_review job with its original id and keys.

    A payment whose outcome is unknown and whose provider may have forgotten its key, with no
    way to look the payment up, is refused (409 `outcome_unknown`) unless `force` is true.
    The job counts against the tenant's quota of unfinished jobs again (`429 quota_exceeded`).
    """
    force = body.force if body is not None else False
    parsed = parse_job_id(job_id)
    with db.session() as session:
        job = get_job(session, parsed, principal.tenant_id)
        if job is None:
            raise ApiError(404, "not_found", "no such job", {"id": job_id})
        refusal = replay_refusal(session, job, settings, force=force)
        if refusal is not None and refusal.code == NOT_REPLAYABLE:
            raise ApiError(409, NOT_REPLAYABLE, refusal.message, {"id": job_id, **refusal.details})
        if refusal is not None and refusal.code == OUTCOME_UNKNOWN:
            raise outcome_unknown(job_id)
        extra = stored_policy(settings, job.retry_policy).max_attempts
        try:
            again = replay_job(session, parsed, principal.tenant_id, extra, utcnow())
        except PaymentRefused as exc:
            # The amount at fault is the stored job's, not this (possibly empty) request's.
            raise refused(exc, ("job",)) from None
        if not again:
            raise ApiError(
                409,
                "not_replayable",
                f"a {job.state} job cannot be retried; only dead, failed and needs_review",
                {"id": job_id, "state": job.state},
            )
        _quota(request).admit(db, principal.tenant_id, 1)  # raising rolls the re-queue back
        details = {"force": True} if force else {}
        audit(session, principal.tenant_id, principal.actor, "job.retry", details, job_id=parsed)
    _publish_all(db, settings, [(parsed, job.type, job.queue)])
    with db.session() as session:
        fresh = get_job(session, parsed, principal.tenant_id)
        assert fresh is not None
        return JobOut.of(fresh, with_attempts=True)


@router.get(
    "/v1/audit-events",
    response_model=list[AuditEventOut],
    responses=error_responses(422),
)
def list_audit_events(
    principal: PrincipalDep,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEventOut]:
    """The tenant's latest operator actions, newest first."""
    with db.session() as session:
        return [
            AuditEventOut(
                id=str(e.id),
                actor=e.actor,
                action=e.action,
                job_id=str(e.job_id) if e.job_id else None,
                details=e.details,
                created_at=e.created_at,
            )
            for e in audit_events(session, principal.tenant_id, limit)
        ]


def _quota(request: Request) -> OpenJobQuota:
    quota: OpenJobQuota = request.app.state.quota
    return quota


def _publish_all(db: Database, settings: Settings, jobs: list[tuple[uuid.UUID, str, str]]) -> None:
    app = producer_app(settings)
    for job_id, job_type, queue in jobs:
        if not publish(app, job_id, job_type, queue):
            with db.session() as session:
                mark_unpublished(session, job_id)
