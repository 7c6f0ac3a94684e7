"""`/v1/jobs`: submit, read and list a tenant's jobs."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.audit_trail import audit_cancel
from api.cursors import invalid_cursor
from api.deps import DatabaseDep, Principal, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.inputs import Text, UtcDatetime
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from api.payment_rules import attach_claim, refused
from api.quota import OpenJobQuota
from api.request_log import current_correlation_id
from api.schemas import JobCreate, JobOut, JobPage
from api.screening import screen, screen_header
from api.shared_redis import api_redis
from api.waiting import (
    WaitQuery,
    WaitSlots,
    answer_after_wait,
    end_notice,
    load_job,
    wait_for_end,
)
from api.webhook_callbacks import (
    checked_callback_url,
    request_resolver,
    require_callback_secret,
)
from config.settings import Settings
from integrations.base import RetryPolicy
from integrations.outbound import Resolver
from integrations.registry import get_job_type
from store.db import Database
from store.jobs import (
    IdempotencyConflict,
    NewJob,
    get_job,
    list_jobs,
    mark_unpublished,
    submit_job,
)
from store.keyset import InvalidCursor
from store.lifecycle import CancelResult, cancel_job
from store.models import Job
from store.payment_claims import PaymentRefused
from store.states import TERMINAL_STATES, JobState
from store.types import utcnow
from tasks.metrics import JOBS_SUBMITTED
from tasks.notify import notify_finished
from tasks.payloads import InvalidPayload, checked_payload
from tasks.policy import effective_policy
from tasks.publish import producer_app, publish
from tasks.webhooks import Outbox

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JsonBodyRoute)

IDEMPOTENCY_KEY_MAX = 255
# Cursors this API issues are ~80 characters; anything much longer is not one of them.


def _request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validated_payload(body: JobCreate, loc: tuple[str | int, ...] = ("body",)) -> dict[str, Any]:
    try:
        return checked_payload(body.type, body.payload, loc)
    except InvalidPayload as exc:
        raise ApiError(422, exc.code, exc.message, exc.details) from None


def build_new_job(
    body: JobCreate,
    principal: Principal,
    settings: Settings,
    idempotency_key: str | None,
    loc: tuple[str | int, ...] = ("body",),
    *,
    resolver: Resolver | None = None,
) -> NewJob:
    """Validate a submit (422 pointing at `loc` when wrong) and turn it into a row to insert.

    A `callback_url` is address-checked here (`resolver` answers DNS; the system's if None).
    """
    payload = _validated_payload(body, loc)
    screen(body.model_dump(mode="json"), loc)
    callback_url = checked_callback_url(body.callback_url, settings, resolver, loc)
    job_type = get_job_type(body.type)
    assert job_type is not None
    override = RetryPolicy(**body.retry.model_dump()) if body.retry else None
    policy = effective_policy(settings, job_type.retry, override)
    return NewJob(
        tenant_id=principal.tenant_id,
        type=body.type,
        queue=job_type.queue,
        payload=payload,
        request_hash=_request_hash(body),
        max_attempts=policy.max_attempts,
        idempotency_key=idempotency_key,
        run_at=body.run_at,
        retry_policy=policy.as_dict(),
        correlation_id=current_correlation_id(),
        callback_url=callback_url,
    )


def parse_job_id(job_id: str) -> uuid.UUID:
    """The UUID in a path, or 404: a malformed id cannot name any job."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        # Not a UUID cannot be any job's id: the same answer as a job that is not there.
        raise ApiError(404, "not_found", "no such job", {"id": job_id}) from None


def _insert(
    db: Database, principal: Principal, quota: OpenJobQuota, new: NewJob
) -> tuple[Job, bool]:
    """Check the tenant's quota and insert the row (blocking: runs in the thread pool).

    A job with a `callback_url` needs the tenant's callback secret (422 before anything).
    A capture, void or refund is checked against the ledger and audited in the transaction
    that commits it (422 on refusal, and then nothing is written).
    """
    if new.callback_url is not None:
        require_callback_secret(db, new.tenant_id, ("body",))
    quota.admit(db, new.tenant_id, 1)
    try:
        job, created = submit_job(db, new)
    except PaymentRefused as exc:
        raise refused(exc) from None
    except IdempotencyConflict:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
            {"idempotency_key": new.idempotency_key},
        ) from None
    if created:
        JOBS_SUBMITTED.labels(job.type, str(job.tenant_id)).inc()
    return job, created


def _publish_or_flag(db: Database, settings: Settings, job: Job) -> bool:
    """Publish a due job's id; False (and the row flagged for the sweeper) when that fails."""
    if job.next_attempt_at is not None or publish(
        producer_app(settings), job.id, job.type, job.queue
    ):
        return True
    with db.session() as session:
        mark_unpublished(session, job.id)
    return False


def _submit_now(
    body: JobCreate,
    principal: Principal,
    db: Database,
    settings: Settings,
    quota: OpenJobQuota,
    idempotency_key: str | None,
    response: Response,
    resolver: Resolver | None,
) -> JobOut:
    new = attach_claim(
        build_new_job(body, principal, settings, idempotency_key, resolver=resolver),
        principal.actor,
    )
    job, created = _insert(db, principal, quota, new)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
        response.status_code = status.HTTP_200_OK
        return JobOut.of(job)
    _publish_or_flag(db, settings, job)
    return JobOut.of(job)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={
        200: {
            "model": JobOut,
            "description": "replay of an earlier submit with the same key, or (with `wait`) "
            "the job already finished",
        },
        **error_responses(409),
    },
)
async def create_job(
    request: Request,
    body: JobCreate,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
    ] = None,
    wait: WaitQuery = 0,
) -> JobOut:
    """Accept a job: validate, commit the row, then publish its id (202).

    With `wait`, submit and wait in one request: the answer is the finished job (200) as soon as
    it ends, or the job as it stands (202) when `wait` runs out first. Beyond the tenant's quota
    of unfinished jobs: `429 quota_exceeded`, nothing written.
    """
    screen_header("Idempotency-Key", idempotency_key)
    quota: OpenJobQuota = request.app.state.quota
    key = idempotency_key or None
    resolver = request_resolver(request)
    if wait <= 0:
        return await run_in_threadpool(
            _submit_now, body, principal, db, settings, quota, key, response, resolver
        )
    slots: WaitSlots = request.app.state.wait_slots
    async with slots.hold(principal.key_id):
        # One thread hop to validate and insert, one to publish, the wait on the event loop.
        job, created = await slots.run(
            lambda: _insert(
                db,
                principal,
                quota,
                replace(
                    attach_claim(
                        build_new_job(body, principal, settings, key, resolver=resolver),
                        principal.actor,
                    ),
                    notify_on_end=True,
                ),
            )
        )
        client = api_redis(request.app)
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
            if job.state not in TERMINAL_STATES:
                await wait_for_end(slots, client, settings, db, job.id, wait)
                return await answer_after_wait(slots, db, job, response, status.HTTP_200_OK)
            response.status_code = status.HTTP_200_OK
            return JobOut.of(job)
        # Subscribed before the id is published, so even an instant finish is heard.
        async with end_notice(client, settings, job.id) as notice:
            if not await slots.run(_publish_or_flag, db, settings, job):
                return JobOut.of(job)
            await notice.wait(wait)
        return await answer_after_wait(slots, db, job, response, status.HTTP_202_ACCEPTED)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(404))
async def read_job(
    request: Request,
    job_id: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
    wait: WaitQuery = 0,
) -> JobOut:
    """A job with its attempt history; another tenant's job is 404, not 403.

    With `wait`, the answer comes as soon as the job reaches a terminal state (or after `wait`
    seconds), woken by the worker's notification rather than by polling; the wait holds no
    request thread. A key holding too many waits gets `429 too_many_waits`.
    """
    parsed = parse_job_id(job_id)
    if wait <= 0:
        job = await run_in_threadpool(load_job, db, parsed, principal.tenant_id)
        if job is None:
            raise ApiError(404, "not_found", "no such job", {"id": job_id})
        return JobOut.of(job, with_attempts=True)
    slots: WaitSlots = request.app.state.wait_slots
    async with slots.hold(principal.key_id):
        job = await slots.run(load_job, db, parsed, principal.tenant_id)
        if job is None:
            raise ApiError(404, "not_found", "no such job", {"id": job_id})
        if job.state in TERMINAL_STATES:
            return JobOut.of(job, with_attempts=True)
        await wait_for_end(slots, api_redis(request.app), settings, db, parsed, wait)
        return await answer_after_wait(slots, db, job, response, status.HTTP_200_OK)


@router.get("", response_model=JobPage, responses=error_responses(422))
def list_jobs_route(
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    state: JobState | None = None,
    type: Text | None = None,
    error_class: Text | None = None,
    created_after: UtcDatetime | None = None,
    created_before: UtcDatetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> JobPage:
    """The tenant's jobs newest first; pass `next_cursor` back as `cursor` for the next page."""
    limit = min(limit, settings.page_size_max)
    with db.session() as session:
        try:
            page = list_jobs(
                session,
                principal.tenant_id,
                limit=limit,
                state=state.value if state else None,
                type=type,
                error_class=error_class,
                created_after=created_after,
                created_before=created_before,
                cursor=cursor,
            )
        except InvalidCursor:
            raise invalid_cursor() from None
        return JobPage(items=[JobOut.of(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    status_code=status.HTTP_200_OK,
    responses={
        202: {"description": "the job is running: asked to stop at its next checkpoint"},
        **error_responses(404, 409),
    },
)
def cancel(
    job_id: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> JobOut:
    """Cancel a waiting job (200, `cancelled`), or ask a running one to stop (202)."""
    parsed = parse_job_id(job_id)
    outbox = Outbox(settings)
    with db.session() as session:
        outcome = cancel_job(session, parsed, principal.tenant_id, utcnow())
        if outcome is CancelResult.CANCELLED:
            outbox.collect_end(session, parsed)  # job.cancelled, in the cancelling transaction
    outbox.publish()
    if outcome is CancelResult.NOT_FOUND:
        raise ApiError(404, "not_found", "no such job", {"id": job_id})
    if outcome in (CancelResult.CANCELLED, CancelResult.REQUESTED):
        audit_cancel(db, principal, parsed, outcome.value)
    if outcome is CancelResult.CANCELLED:
        notify_finished(settings, parsed, JobState.CANCELLED.value)
    with db.session() as session:
        job = get_job(session, parsed, principal.tenant_id)
        assert job is not None
        rendered = JobOut.of(job, with_attempts=True)
    if outcome is CancelResult.TERMINAL:
        raise ApiError(
            409,
            "job_finished",
            f"the job is already {job.state} and cannot be cancelled",
            {"id": job_id, "state": job.state},
        )
    if outcome is CancelResult.REQUESTED:
        # Running: honoured at the job's next checkpoint; the final state tells how it ended.
        response.status_code = status.HTTP_202_ACCEPTED
    return rendered
