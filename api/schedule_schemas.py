"""Request and response bodies of the schedules API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from api.inputs import UtcDatetime
from store.models import Schedule
from store.schedules import LastRun, RunStats, trigger_of
from store.triggers import in_zone, upcoming
from tasks.schedule_spec import ScheduleCreate, ScheduleFields

UPCOMING = 5


class ScheduleFieldsIn(ScheduleFields):
    """A PATCH body: the schedule fields, with the API's checked date-times (ISO 8601 only)."""

    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None


class ScheduleCreateIn(ScheduleCreate):
    """A POST body: a new schedule, with the API's checked date-times (ISO 8601 only)."""

    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None


class FireTime(BaseModel):
    """A fire time in UTC and in the schedule's zone."""

    utc: datetime
    local: datetime


class RunOut(BaseModel):
    """A run of a schedule: its slot, its job and the job's state, the lag to its start."""

    fire_time: datetime
    fired_at: datetime
    kind: str
    outcome: str
    job_id: uuid.UUID | None
    job_state: str | None
    lag_s: float | None

    @classmethod
    def of(cls, run: LastRun) -> RunOut:
        """Render a run."""
        return cls(**run.__dict__)


class ScheduleOut(BaseModel):
    """A schedule as its tenant sees it, with what comes next and how it has been going."""

    name: str
    builtin: bool
    type: str
    payload: dict[str, Any]
    cron: str | None
    timezone: str
    interval_s: float | None
    start_at: datetime | None
    end_at: datetime | None
    enabled: bool
    misfire: str
    overlap: str
    retry: dict[str, Any] | None
    next_fire_at: datetime | None
    next_fire_times: list[FireTime]
    last_fire_time: datetime | None
    last_fired_at: datetime | None
    last_run: RunOut | None
    recent_failures: int
    failing_streak: int
    recent_skipped_quota: int
    skipped_slots: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule: Schedule, stats: RunStats, now: datetime) -> ScheduleOut:
        """Render a schedule row with its run statistics; upcoming times are computed at `now`."""
        tz = ZoneInfo(schedule.timezone)
        times: list[datetime] = []
        if schedule.next_fire_at is not None:
            # The next slot (overdue while paused or catching up), then the ones after it.
            after = max(schedule.next_fire_at, now)
            times = [schedule.next_fire_at]
            times += upcoming(trigger_of(schedule), after, UPCOMING - 1, schedule.end_at)
        return cls(
            name=schedule.name,
            builtin=schedule.builtin,
            type=schedule.job_type,
            payload=schedule.payload,
            cron=schedule.cron,
            timezone=schedule.timezone,
            interval_s=schedule.interval_s,
            start_at=schedule.start_at,
            end_at=schedule.end_at,
            enabled=schedule.enabled,
            misfire=schedule.misfire,
            overlap=schedule.overlap,
            retry=schedule.retry,
            next_fire_at=schedule.next_fire_at,
            next_fire_times=local_times(times, tz),
            last_fire_time=schedule.last_fire_time,
            last_fired_at=schedule.last_fired_at,
            last_run=RunOut.of(stats.last_run) if stats.last_run else None,
            recent_failures=stats.recent_failures,
            failing_streak=stats.failing_streak,
            recent_skipped_quota=stats.recent_skipped_quota,
            skipped_slots=schedule.skipped_slots,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
        )


def local_times(times: list[datetime], tz: ZoneInfo) -> list[FireTime]:
    """Fire times with their local time; one whose local time passes year 9999 is left out."""
    shown = [(t, in_zone(t, tz)) for t in times]
    return [FireTime(utc=t, local=local) for t, local in shown if local is not None]


class SchedulePage(BaseModel):
    """A page of schedules by name, and the opaque cursor for the next one."""

    items: list[ScheduleOut]
    next_cursor: str | None
