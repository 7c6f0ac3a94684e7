"""`/ops`: queues, jobs, one job's timeline, dead letters with replay, breakers, schedules,
audit.

Server-rendered (Jinja2, autoescaped), readable without JavaScript; actions are plain HTML
forms (POST, CSRF token). Reads span every tenant; every action is audited (`tasks/ops.py`).
Attempt excerpts are redacted again before display (`integrations.redact.redact_text`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from redis.exceptions import RedisError

from api.deps import DatabaseDep, SettingsDep
from api.errors import ApiError, error_response
from api.jsonbody import JsonBodyRoute, check_fields
from api.ops.auth import OperatorConsole, check_form
from config.celery import QUEUES
from integrations.redact import redact_text
from store.backlog import QueueBacklog, queue_backlog, stuck_counts
from store.ops import OpsFilter, all_schedules, audit_log, find_jobs, job_with_attempts
from store.states import ErrorClass, JobState
from store.types import utcnow
from tasks import heartbeats
from tasks import ops as actions
from tasks.providers import provider_of, provider_statuses, providers
from tasks.queue_health import assess, broker_lengths

router = APIRouter(prefix="/ops", include_in_schema=False, route_class=JsonBodyRoute)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

PAGE = 100
SCHEDULES_PAGE = 500
EXCERPT_MAX = 2000


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    return templates.TemplateResponse(request, name, context)


async def _form(request: Request) -> dict[str, str]:
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"))
    form = {key: values[-1] for key, values in parsed.items()}
    check_fields("form", form.items())
    return form


class BadQuery(ApiError):
    """A console page's query parameter it cannot honour: 422, as a page unless JSON is asked."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(
            422,
            "validation_error",
            f"query parameter {name!r}: {message}",
            [{"loc": ["query", name], "message": message, "type": "value_error"}],
        )
        self.name = name
        self.reason = message


def install_console_errors(app: FastAPI) -> None:
    """Answer a console page's bad query parameter with an HTML page (JSON if asked for)."""

    @app.exception_handler(BadQuery)
    async def _bad_query(request: Request, exc: BadQuery) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return error_response(exc.status, exc.code, exc.message, exc.details)
        page = templates.TemplateResponse(
            request,
            "bad_query.html",
            {"name": exc.name, "reason": exc.reason, "path": request.url.path},
            status_code=422,
        )
        return page


def _query(request: Request, allowed: dict[str, list[str] | None]) -> dict[str, str]:
    """The page's query parameters, each known and (when it has a list) one of its values."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadQuery(name, f"this page takes no such parameter (it takes: {known})")
        if name in params:
            raise BadQuery(name, "given more than once")
        valid = allowed[name]
        if value and valid is not None and value not in valid:
            raise BadQuery(name, f"must be one of {', '.join(valid)}")
        params[name] = value
    return params


def _job_filters() -> dict[str, list[str] | None]:
    return {
        "state": [s.value for s in JobState],
        "provider": list(providers()),
        "error_class": [c.value for c in ErrorClass],
        "type": None,
        "tenant": None,
    }


def _filter(params: dict[str, str]) -> OpsFilter:
    provider = params.get("provider") or None
    # An unknown provider has no job types: it matches nothing rather than everything.
    types = providers().get(provider, ()) if provider else None
    return OpsFilter(
        state=params.get("state") or None,
        type=params.get("type") or None,
        types=types,
        error_class=params.get("error_class") or None,
        tenant=params.get("tenant") or None,
    )


def _job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", "no such job", {"id": value}) from None


@router.get("", response_class=HTMLResponse)
def overview(
    request: Request, operator: OperatorConsole, db: DatabaseDep, settings: SettingsDep
) -> HTMLResponse:
    """Queues (DB backlog, oldest age, broker length, live consumers), breakers, stuck jobs."""
    _query(request, {})
    now = utcnow()
    with db.session() as session:
        found = {b.queue: b for b in queue_backlog(session, now)}
        stuck = stuck_counts(session)
    backlog = [found.get(q, QueueBacklog(q)) for q in sorted({*QUEUES, *found})]
    broker = broker_lengths(settings)
    try:
        consumers = heartbeats.live_now(settings)
        health = {
            h.queue: h
            for h in assess(backlog, broker, consumers, now.timestamp(), settings.consumer_stall_s)
        }
    except RedisError:
        health = {}
    return _render(
        request,
        "overview.html",
        operator=operator,
        backlog=backlog,
        broker=broker,
        health=health,
        breakers=provider_statuses(settings),
        stuck_total=sum(s.count for s in stuck),
    )


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request, operator: OperatorConsole, db: DatabaseDep) -> HTMLResponse:
    """Jobs of every tenant by state, type, provider, error class, tenant (newest first)."""
    params = _query(request, _job_filters())
    with db.session() as session:
        rows = find_jobs(session, _filter(params), PAGE)
        items = [
            {
                "id": job.id,
                "tenant": tenant,
                "type": job.type,
                "provider": provider_of(job.type),
                "state": job.state,
                "error_class": job.error_class or "",
                "attempts": job.attempts,
                "created_at": job.created_at,
                "message": redact_text(str((job.error or {}).get("message", "")))[:200],
            }
            for job, tenant in rows
        ]
    return _render(
        request,
        "jobs.html",
        operator=operator,
        items=items,
        params=params,
        states=[s.value for s in JobState],
        error_classes=[c.value for c in ErrorClass],
        provider_names=list(providers()),
        page=PAGE,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str, operator: OperatorConsole, db: DatabaseDep) -> HTMLResponse:
    """One job's timeline: each attempt with outcome, status, latency, error, excerpts."""
    params = _query(request, {"message": None})
    with db.session() as session:
        found = job_with_attempts(session, _job_id(job_id))
        if found is None:
            raise ApiError(404, "not_found", "no such job", {"id": job_id})
        row, tenant = found
        attempts = [
            {
                "number": a.number,
                "started_at": a.started_at,
                "outcome": a.outcome,
                "http_status": a.http_status,
                "latency_ms": a.latency_ms,
                "error_class": a.error_class or "",
                "error_message": redact_text(a.error_message or "")[:EXCERPT_MAX],
                "request": redact_text(a.request_excerpt or "")[:EXCERPT_MAX],
                "response": redact_text(a.response_excerpt or "")[:EXCERPT_MAX],
                "worker": a.worker,
            }
            for a in row.attempt_rows
        ]
        error = {k: redact_text(str(v)) for k, v in (row.error or {}).items()}
        view = {
            "id": row.id,
            "tenant": tenant,
            "type": row.type,
            "provider": provider_of(row.type),
            "queue": row.queue,
            "state": row.state,
            "error_class": row.error_class or "",
            "attempts": row.attempts,
            "max_attempts": row.max_attempts,
            "replays": row.replays,
            "correlation_id": row.correlation_id or "",
            "created_at": row.created_at,
            "finished_at": row.finished_at,
            "next_attempt_at": row.next_attempt_at,
        }
    return _render(
        request,
        "job.html",
        operator=operator,
        job=view,
        error=error,
        attempts=attempts,
        message=params.get("message", ""),
    )


@router.post("/jobs/{job_id}/{action}")
async def act_on_job(
    request: Request,
    job_id: str,
    action: str,
    operator: OperatorConsole,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """Retry or cancel one job (a form post), then show the job again with what happened."""
    check_form(request, await _form(request))
    parsed = _job_id(job_id)
    if action == "retry":
        message = actions.retry(db, settings, parsed, operator.actor)
    elif action == "cancel":
        message = actions.cancel(db, settings, parsed, operator.actor)
    else:
        raise ApiError(404, "not_found", "no such action", {"action": action})
    query = urlencode({"message": message})
    return RedirectResponse(f"/ops/jobs/{parsed}?{query}", status_code=303)


@router.get("/stuck", response_class=HTMLResponse)
def stuck(request: Request, operator: OperatorConsole, db: DatabaseDep) -> HTMLResponse:
    """Dead and needs_review jobs grouped by state, provider, type and error class."""
    _query(request, {})
    with db.session() as session:
        groups = [
            {
                "state": s.state,
                "provider": provider_of(s.type),
                "type": s.type,
                "error_class": s.error_class,
                "count": s.count,
                "query": urlencode(
                    {
                        "state": s.state,
                        "type": s.type,
                        "error_class": "" if s.error_class == "none" else s.error_class,
                    }
                ),
            }
            for s in stuck_counts(session)
        ]
    return _render(request, "stuck.html", operator=operator, groups=groups)


@router.post("/replay", response_class=HTMLResponse)
async def replay(
    request: Request, operator: OperatorConsole, db: DatabaseDep, settings: SettingsDep
) -> HTMLResponse:
    """First a dry run (how many, which), then, with `confirm`, the replay itself."""
    form = await _form(request)
    check_form(request, form)
    flt = _filter(form)
    if not actions.replayable(flt):
        raise ApiError(422, "not_replayable", "replay needs state dead, failed or needs_review")
    fields = {k: form.get(k, "") for k in ("state", "type", "provider", "error_class", "tenant")}
    if form.get("confirm") != "yes":
        preview = actions.dry_run(db, settings, flt)
        return _render(
            request, "replay.html", operator=operator, fields=fields, preview=preview, done=None
        )
    done = actions.replay_group(db, settings, flt, operator.actor)
    return _render(
        request, "replay.html", operator=operator, fields=fields, preview=None, done=done
    )


@router.post("/providers/{provider}/close")
async def close_breaker(
    request: Request,
    provider: str,
    operator: OperatorConsole,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    """Close a provider's circuit breaker by hand (audited)."""
    check_form(request, await _form(request))
    if provider not in providers():
        raise ApiError(404, "not_found", "no such provider", {"provider": provider})
    try:
        actions.close_provider_breaker(db, settings, provider, operator.actor, operator.tenant_id)
    except RedisError:
        raise ApiError(
            503,
            "unavailable",
            "the breaker was not closed: the guard Redis is not answering",
            {"setting": "CONVEYOR_GUARD_REDIS_URL"},
            headers={"Retry-After": "5"},
        ) from None
    return RedirectResponse("/ops", status_code=303)


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request, operator: OperatorConsole, db: DatabaseDep) -> HTMLResponse:
    """Every schedule with its last run (slot, firing, job) and next run."""
    _query(request, {})
    now = utcnow()
    with db.session() as session:
        views = all_schedules(session, SCHEDULES_PAGE)
    rows = [{**vars(v), "delay_s": v.fire_delay_s or 0.0, "late_s": v.late_s(now)} for v in views]
    return _render(request, "schedules.html", operator=operator, schedules=rows)


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, operator: OperatorConsole, db: DatabaseDep) -> HTMLResponse:
    """The latest audit events of every tenant."""
    _query(request, {})
    with db.session() as session:
        events = [
            {
                "created_at": e.created_at,
                "tenant": tenant,
                "actor": e.actor,
                "action": e.action,
                "job_id": e.job_id,
                "details": e.details,
            }
            for e, tenant in audit_log(session, 200)
        ]
    return _render(request, "audit.html", operator=operator, events=events)
