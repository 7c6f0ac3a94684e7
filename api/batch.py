"""`POST /v1/jobs/batch`: many jobs in one request, one transaction, one publishing connection."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DatabaseDep, PrincipalDep, SettingsDep
from api.jobs import build_new_job
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from api.payment_rules import attach_claim, refused
from api.quota import OpenJobQuota
from api.schemas import JobCreate
from api.webhook_callbacks import request_resolver, require_callback_secret
from store.jobs import mark_unpublished, submit_jobs
from store.payment_claims import PaymentRefused
from tasks.metrics import JOBS_SUBMITTED
from tasks.publish import producer_app, publish_many

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JsonBodyRoute)

BATCH_MAX = 1000


class BatchCreate(BaseModel):
    """Up to 1,000 jobs; all are valid and accepted together, or none is."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobCreate] = Field(min_length=1, max_length=BATCH_MAX)


class AcceptedJob(BaseModel):
    """A job the batch accepted."""

    id: uuid.UUID
    type: str
    state: str


class BatchAccepted(BaseModel):
    """The accepted jobs, in the order submitted."""

    jobs: list[AcceptedJob]


@router.post(
    "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses=error_responses(422),
)
def create_batch(
    request: Request,
    body: BatchCreate,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> BatchAccepted:
    """Validate every job (a 422 names the index of the first bad one), commit, publish."""
    resolver = request_resolver(request)
    news = [
        attach_claim(
            build_new_job(
                job, principal, settings, None, ("body", "jobs", index), resolver=resolver
            ),
            principal.actor,
        )
        for index, job in enumerate(body.jobs)
    ]
    first_callback = next((i for i, n in enumerate(news) if n.callback_url is not None), None)
    if first_callback is not None:
        require_callback_secret(db, principal.tenant_id, ("body", "jobs", first_callback))
    quota: OpenJobQuota = request.app.state.quota
    quota.admit(db, principal.tenant_id, len(news))
    try:
        jobs = submit_jobs(db, news)
    except PaymentRefused as exc:
        raise refused(exc, ("body", "jobs", exc.position)) from None
    for job in jobs:
        JOBS_SUBMITTED.labels(job.type, str(principal.tenant_id)).inc()
    due = [(j.id, j.type, j.queue) for j in jobs if j.next_attempt_at is None]
    failed = publish_many(producer_app(settings), due)
    if failed:
        with db.session() as session:
            for job_id in failed:
                mark_unpublished(session, job_id)
    return BatchAccepted(jobs=[AcceptedJob(id=j.id, type=j.type, state=j.state) for j in jobs])
