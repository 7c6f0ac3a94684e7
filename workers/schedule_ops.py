"""What `conveyor schedules …` does: the schedules API's rules from a shell, for operators.

Each command names the tenant; validation, pause, trigger and delete go through the same
checks and repository functions as the API (built-ins are listed but cannot be changed).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError

from config.settings import get_settings
from store.db import Database, get_database
from store.models import Schedule
from store.schedules import (
    DuplicateSchedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    run_stats,
    set_enabled,
    tenant_id_named,
    trigger_of,
)
from store.triggers import in_zone, upcoming
from store.types import utcnow
from tasks.publish import producer_app
from tasks.schedule_spec import InvalidSchedule, ScheduleCreate, check
from tasks.schedules import dispatch, trigger_now

LIST_MAX = 1000


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"conveyor: {message}", err=True)
    return typer.Exit(code)


def _tenant(db: Database, name: str) -> uuid.UUID:
    with db.session() as session:
        tenant_id = tenant_id_named(session, name)
    if tenant_id is None:
        raise _fail(f"no tenant named {name!r}", 1)
    return tenant_id


def _load(db: Database, tenant_id: uuid.UUID, name: str, change: bool) -> Schedule:
    with db.session() as session:
        schedule = get_schedule(session, tenant_id, name)
    if schedule is None:
        raise _fail(f"no schedule named {name!r}", 1)
    if change and schedule.builtin:
        raise _fail(f"{name} is built in (declared in code) and cannot be changed", 1)
    return schedule


def _describe(db: Database, schedule: Schedule) -> dict[str, Any]:
    with db.session() as session:
        stats = run_stats(session, schedule.id)
    tz = ZoneInfo(schedule.timezone)
    times: list[datetime] = []
    if schedule.next_fire_at is not None:
        times = [schedule.next_fire_at]
        times += upcoming(
            trigger_of(schedule), max(schedule.next_fire_at, utcnow()), 4, schedule.end_at
        )
    last = stats.last_run
    return {
        "name": schedule.name,
        "builtin": schedule.builtin,
        "type": schedule.job_type,
        "trigger": schedule.cron or f"every {schedule.interval_s:g}s",
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "misfire": schedule.misfire,
        "overlap": schedule.overlap,
        "next_fire_times": [
            {"utc": t.isoformat(), "local": local.isoformat()}
            for t in times
            if (local := in_zone(t, tz)) is not None
        ],
        "last_run": None
        if last is None
        else {
            "fire_time": last.fire_time.isoformat(),
            "job_id": str(last.job_id) if last.job_id else None,
            "state": last.job_state or last.outcome,
            "lag_s": last.lag_s,
        },
        "recent_failures": stats.recent_failures,
        "failing_streak": stats.failing_streak,
        "recent_skipped_quota": stats.recent_skipped_quota,
        "skipped_slots": schedule.skipped_slots,
    }


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def list_schedules_of(tenant: str) -> None:
    """The built-ins and the tenant's schedules, one line each."""
    db = get_database(get_settings())
    with db.session() as session:
        rows = list_schedules(session, _tenant(db, tenant), LIST_MAX)
    for row in rows:
        state = "enabled" if row.enabled else "paused"
        trigger = row.cron or f"every {row.interval_s:g}s"
        nxt = row.next_fire_at.isoformat() if row.next_fire_at else "-"
        typer.echo(f"{row.name:<32} {trigger:<20} {state:<8} next {nxt}")


def show(name: str, tenant: str) -> None:
    """One schedule: trigger, next five fire times, last run, failures."""
    db = get_database(get_settings())
    _print(_describe(db, _load(db, _tenant(db, tenant), name, change=False)))


def create(
    tenant: str,
    name: str,
    type: str,
    payload: str,
    cron: str | None,
    timezone: str,
    interval_s: float | None,
    misfire: str,
    overlap: str,
    paused: bool,
) -> None:
    """Create a schedule, validated exactly as `POST /v1/schedules` validates it."""
    db = get_database(get_settings())
    tenant_id = _tenant(db, tenant)
    now = utcnow()
    try:
        body = ScheduleCreate.model_validate(
            {
                "name": name,
                "type": type,
                "payload": json.loads(payload),
                "cron": cron,
                "timezone": timezone,
                "interval_s": interval_s,
                "misfire": misfire,
                "overlap": overlap,
                "enabled": not paused,
            }
        )
        spec = check(body, now, loc=())
    except json.JSONDecodeError as exc:
        raise _fail(f"payload: not JSON ({exc.msg})") from None
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _fail(fields) from None
    except InvalidSchedule as exc:
        raise _fail(f"{exc.code}: {exc.message} {json.dumps(exc.details)}") from None
    try:
        schedule = create_schedule(db, tenant_id, spec, now)
    except DuplicateSchedule:
        raise _fail(f"a schedule named {name!r} exists", 1) from None
    _print(_describe(db, schedule))


def _toggle(name: str, tenant: str, enabled: bool) -> None:
    db = get_database(get_settings())
    schedule = _load(db, _tenant(db, tenant), name, change=True)
    with db.session() as session:
        row = session.get(Schedule, schedule.id)
        assert row is not None
        if row.enabled != enabled:
            set_enabled(session, row, enabled, utcnow())
    typer.echo(f"{name} {'resumed' if enabled else 'paused'}")


def pause(name: str, tenant: str) -> None:
    """Stop firing; slots passing meanwhile follow the misfire policy on resume."""
    _toggle(name, tenant, False)


def resume(name: str, tenant: str) -> None:
    """Fire again."""
    _toggle(name, tenant, True)


def trigger(name: str, tenant: str) -> None:
    """Run the schedule's job once now, outside its slots; prints the job id."""
    settings = get_settings()
    db = get_database(settings)
    schedule = _load(db, _tenant(db, tenant), name, change=True)
    fired = trigger_now(db, settings, schedule, utcnow())
    dispatch(db, producer_app(settings), fired)
    for job in fired.jobs:
        typer.echo(str(job.id))


def delete(name: str, tenant: str) -> None:
    """Delete a schedule and its run history (its jobs stay)."""
    db = get_database(get_settings())
    schedule = _load(db, _tenant(db, tenant), name, change=True)
    with db.session() as session:
        delete_schedule(session, schedule)
    typer.echo(f"{name} deleted")
