"""`/v1/schedules`: a tenant's schedules (and the built-in ones, read-only), editable at run
time; beat picks every change up within a tick."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import ValidationError

from api import jsonbody
from api.cursors import name_position
from api.deps import DatabaseDep, Principal, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.quota import OpenJobQuota
from api.schedule_schemas import (
    RunOut,
    ScheduleCreateIn,
    ScheduleFieldsIn,
    ScheduleOut,
    SchedulePage,
)
from store.db import Database
from store.keyset import encode_name_cursor
from store.models import Schedule
from store.schedules import (
    DuplicateSchedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    replace_schedule,
    run_stats,
    set_enabled,
)
from store.types import utcnow
from tasks.publish import producer_app
from tasks.schedule_spec import (
    InvalidSchedule,
    check,
    merged,
)
from tasks.schedules import StaleSchedule, dispatch, trigger_now

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=jsonbody.JsonBodyRoute)
TRIGGER_TRIES = 3


def _invalid(exc: InvalidSchedule) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.details)


def _render(db: Database, schedule: Schedule) -> ScheduleOut:
    with db.session() as session:
        stats = run_stats(session, schedule.id)
    return ScheduleOut.of(schedule, stats, utcnow())


def _load(db: Database, principal: Principal, name: str) -> Schedule:
    with db.session() as session:
        schedule = get_schedule(session, principal.tenant_id, name)
    if schedule is None:
        raise ApiError(404, "not_found", "no such schedule", {"name": name})
    return schedule


def _own(db: Database, principal: Principal, name: str) -> Schedule:
    schedule = _load(db, principal, name)
    if schedule.builtin:
        raise ApiError(
            409,
            "builtin_schedule",
            "built-in maintenance schedules are declared in code and cannot be changed here",
            {"name": name},
        )
    return schedule


def _fields(schedule: Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "type": schedule.job_type,
        "payload": schedule.payload,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "interval_s": schedule.interval_s,
        "start_at": schedule.start_at,
        "end_at": schedule.end_at,
        "enabled": schedule.enabled,
        "misfire": schedule.misfire,
        "overlap": schedule.overlap,
        "retry": schedule.retry,
    }


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScheduleOut)
def create(body: ScheduleCreateIn, principal: PrincipalDep, db: DatabaseDep) -> ScheduleOut:
    """Create a schedule (201); 409 when the name is taken, 422 naming the field at fault."""
    now = utcnow()
    try:
        spec = check(body, now)
    except InvalidSchedule as exc:
        raise _invalid(exc) from None
    try:
        schedule = create_schedule(db, principal.tenant_id, spec, now)
    except DuplicateSchedule:
        raise ApiError(
            409, "schedule_exists", "a schedule of this name exists", {"name": body.name}
        ) from None
    return _render(db, schedule)


@router.get("", response_model=SchedulePage)
def list_route(
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> SchedulePage:
    """The built-ins and the tenant's schedules by name; pass `next_cursor` back as `cursor`."""
    limit = min(limit, settings.page_size_max)
    after = name_position(cursor)
    with db.session() as session:
        rows = list_schedules(session, principal.tenant_id, limit + 1, after)
        stats = [run_stats(session, row.id) for row in rows[:limit]]
    now = utcnow()
    return SchedulePage(
        items=[ScheduleOut.of(row, st, now) for row, st in zip(rows, stats, strict=False)],
        next_cursor=encode_name_cursor(rows[limit - 1].name) if len(rows) > limit else None,
    )


@router.get("/{name}", response_model=ScheduleOut)
def read(name: str, principal: PrincipalDep, db: DatabaseDep) -> ScheduleOut:
    """One schedule; another tenant's name is 404."""
    return _render(db, _load(db, principal, name))


@router.get("/{name}/runs", response_model=list[RunOut])
def runs(name: str, principal: PrincipalDep, db: DatabaseDep) -> list[RunOut]:
    """The schedule's latest runs, newest first."""
    schedule = _load(db, principal, name)
    with db.session() as session:
        stats = run_stats(session, schedule.id)
    return [RunOut.of(run) for run in stats.recent]


@router.patch("/{name}", response_model=ScheduleOut)
def patch(
    name: str, body: ScheduleFieldsIn, principal: PrincipalDep, db: DatabaseDep
) -> ScheduleOut:
    """Change a schedule; a new trigger or window takes effect at beat's next tick."""
    schedule = _own(db, principal, name)
    now = utcnow()
    try:
        spec = check(merged(_fields(schedule), body), now)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "the request is invalid", _errors(exc)) from None
    except InvalidSchedule as exc:
        raise _invalid(exc) from None
    with db.session() as session:
        row = session.get(Schedule, schedule.id, with_for_update=True)
        if row is None:
            raise ApiError(404, "not_found", "no such schedule", {"name": name})
        replace_schedule(session, row, spec, now)
    return _render(db, row)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": ["body", *err["loc"]], "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _toggle(db: Database, principal: Principal, name: str, enabled: bool) -> ScheduleOut:
    schedule = _own(db, principal, name)
    with db.session() as session:
        row = session.get(Schedule, schedule.id, with_for_update=True)
        if row is None:
            raise ApiError(404, "not_found", "no such schedule", {"name": name})
        if row.enabled != enabled:
            set_enabled(session, row, enabled, utcnow())
    return _render(db, row)


@router.post("/{name}/pause", response_model=ScheduleOut)
def pause(name: str, principal: PrincipalDep, db: DatabaseDep) -> ScheduleOut:
    """Stop firing until resumed; slots that pass meanwhile follow the misfire policy."""
    return _toggle(db, principal, name, False)


@router.post("/{name}/resume", response_model=ScheduleOut)
def resume(name: str, principal: PrincipalDep, db: DatabaseDep) -> ScheduleOut:
    """Fire again: missed slots are skipped (`skip`) or run once for the latest (`run_once`)."""
    return _toggle(db, principal, name, True)


@router.post("/{name}/trigger", status_code=status.HTTP_202_ACCEPTED, response_model=ScheduleOut)
def trigger(
    name: str, request: Request, principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> ScheduleOut:
    """Run the schedule's job once now, outside its slot sequence (202, like a submit).

    Counts against the tenant's quota of unfinished jobs like a submit: `429 quota_exceeded`.
    """
    quota: OpenJobQuota = request.app.state.quota
    _own(db, principal, name)
    quota.admit(db, principal.tenant_id, 1)
    for _ in range(TRIGGER_TRIES):
        schedule = _own(db, principal, name)
        try:
            fired = trigger_now(db, settings, schedule, utcnow())
            break
        except StaleSchedule:
            continue  # beat fired a slot (or someone edited it) meanwhile: read it again
    else:
        raise ApiError(
            409, "schedule_changed", "the schedule kept changing; try again", {"name": name}
        )
    dispatch(db, producer_app(settings), fired)
    return _render(db, _load(db, principal, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete(name: str, principal: PrincipalDep, db: DatabaseDep) -> Response:
    """Delete a schedule and its run history (its jobs stay); built-ins cannot be deleted."""
    schedule = _own(db, principal, name)
    with db.session() as session:
        delete_schedule(session, schedule)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
