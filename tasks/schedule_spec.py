"""What a schedule may say, checked once for the API and the CLI alike.

The payload is validated exactly as a submitted job's: against its job type's payload model from
the registry, and stored in the dumped (normalised) form. Errors name the field they are about.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AllowInfNan, AwareDatetime, BaseModel, ConfigDict, Field, Strict, StrictBool

from store.schedules import ScheduleSpec
from store.triggers import CronTrigger, IntervalTrigger, InvalidTrigger, in_zone, zone
from tasks.payloads import InvalidPayload, checked_payload
from tasks.screening import Refused, screen_value
from tasks.zones import canonical

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
RESERVED_PREFIX = "conveyor."  # the built-in maintenance schedules' names
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * 86400.0
# A window must close before the last year datetime can hold, so that every fire time and its
# local time in any zone (±14 h) can be computed and shown.
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
# zoneinfo also finds files that are not canonical IANA zones: the system's own (`localtime`),
# the leap-second and POSIX copies of the tree, the "Factory" placeholder and POSIX-rule names
# (EST5EDT, CST6CDT, …). Only the canonical names are accepted.
_NOT_ZONES = re.compile(r"(localtime|posixrules|Factory|(posix|right)/.*|[A-Z]{3}\d[A-Z]{3})")
Loc = tuple[str | int, ...]


class InvalidSchedule(InvalidPayload):
    """A schedule that cannot be accepted: a stable code, a message, details naming fields."""


# Strict numbers: JSON true, "5" or "60" are errors, not 1, 5 or 60; NaN and infinities too.
Count = Annotated[int, Strict()]
Seconds = Annotated[float, Strict(), AllowInfNan(False)]


class RetryOverride(BaseModel):
    """Retry settings for the schedule's jobs; the server's caps still apply."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: Count | None = Field(default=None, ge=1, le=100)
    base_s: Seconds | None = Field(default=None, gt=0, le=3600)
    cap_s: Seconds | None = Field(default=None, gt=0, le=86400)
    max_age_s: Seconds | None = Field(default=None, gt=0, le=30 * 86400)


class ScheduleFields(BaseModel):
    """Everything of a schedule but its name; every field optional (the shape of a PATCH).

    The API's bodies narrow `start_at`/`end_at` to its checked date-time type (ISO 8601 text
    only, in range); see api/schedule_schemas.py.
    """

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=100)
    payload: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=100, examples=["30 2 * * *"])
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["Europe/Berlin"]
    )
    interval_s: Seconds | None = Field(default=None, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    enabled: StrictBool | None = None
    misfire: Literal["skip", "run_once"] | None = None
    overlap: Literal["skip", "allow"] | None = None
    retry: RetryOverride | None = None


class ScheduleCreate(ScheduleFields):
    """A new schedule: a name, a job (type and payload) and a trigger (cron or interval_s)."""

    name: str = Field(pattern=NAME_PATTERN, examples=["nightly-rates"])
    type: str = Field(min_length=1, max_length=100, examples=["data.sandbox.fetch_rates"])


# Payment operations that claim an earlier payment (store/payment_claims.py).
CLAIMING_OPERATIONS = frozenset({"capture", "void", "refund"})


def validated_payload(job_type: str, payload: dict[str, Any], loc: Loc) -> dict[str, Any]:
    """The payload as a submitted job of `job_type` would store it (tasks/payloads.py, the
    submit's own check, card-data screen included); InvalidSchedule otherwise."""
    family, _, rest = job_type.partition(".")
    if family == "payments" and rest.rpartition(".")[2] in CLAIMING_OPERATIONS:
        # A capture, void or refund acts once on one earlier payment, checked against the
        # tenant's ledger at submit: a repeating schedule of it can only fail from its second
        # firing on. Submit it as a job (with `run_at` for later) instead.
        raise InvalidSchedule(
            "not_schedulable",
            f"{job_type} acts once on one payment; submit it as a job (run_at for later)",
            {"loc": [*loc, "type"]},
        )
    try:
        return checked_payload(job_type, payload, loc)
    except InvalidPayload as exc:
        raise InvalidSchedule(exc.code, exc.message, exc.details) from None


def _invalid(field: str, message: str, loc: Loc) -> InvalidSchedule:
    return InvalidSchedule(
        "invalid_schedule", message, [{"loc": [*loc, field], "message": message}]
    )


@cache
def zone_names() -> frozenset[str]:
    """The canonical IANA zone names this host knows (aliases are links: tasks/zones.py)."""
    return frozenset(
        n for n in available_timezones() if _NOT_ZONES.fullmatch(n) is None and canonical(n) is None
    )


def _window(body: ScheduleCreate, timezone: str, loc: Loc) -> None:
    tz = zone(timezone)
    for field, value in (("start_at", body.start_at), ("end_at", body.end_at)):
        if value is None:
            continue
        if value >= LATEST:
            raise _invalid(field, f"{field} must be before {LATEST.isoformat()}", loc)
        if in_zone(value, tz) is None:
            raise _invalid(field, f"{field} falls outside years 1-9999 in {timezone}", loc)
    if body.start_at is not None and body.end_at is not None and body.end_at <= body.start_at:
        raise _invalid("end_at", "end_at must be after start_at", loc)


def check(body: ScheduleCreate, now: datetime, loc: Loc = ("body",)) -> ScheduleSpec:
    """A full schedule definition checked: name, trigger, zone, window, job type and payload
    (screened for card data and secrets like a submit's).

    Raises InvalidSchedule naming the field at fault.
    """
    if body.name.startswith(RESERVED_PREFIX):
        raise _invalid("name", f"names starting {RESERVED_PREFIX!r} are reserved", loc)
    try:
        screen_value(body.name, (*loc, "name"))
    except Refused as exc:
        raise InvalidSchedule(exc.code, exc.message, exc.details) from None
    if (body.cron is None) == (body.interval_s is None):
        raise _invalid("cron", "give exactly one trigger: cron or interval_s", loc)
    timezone = "UTC" if body.timezone is None else body.timezone
    if (alias_of := canonical(timezone)) is not None:
        message = f"{timezone!r} is an alias; use the canonical IANA name {alias_of!r}"
        raise InvalidSchedule(
            "invalid_schedule",
            message,
            [{"loc": [*loc, "timezone"], "message": message, "canonical": alias_of}],
        )
    if timezone not in zone_names():
        raise _invalid("timezone", f"unknown time zone {timezone!r} (an IANA name)", loc)
    try:
        if body.cron is not None:
            CronTrigger(body.cron, timezone)
        else:
            assert body.interval_s is not None
            IntervalTrigger(body.interval_s, now)
    except InvalidTrigger as exc:
        raise _invalid(exc.field, exc.message, loc) from None
    _window(body, timezone, loc)
    payload = validated_payload(body.type, body.payload or {}, loc)
    return ScheduleSpec(
        name=body.name,
        job_type=body.type,
        payload=payload,
        cron=body.cron,
        timezone=timezone,
        interval_s=body.interval_s,
        start_at=body.start_at,
        end_at=body.end_at,
        enabled=True if body.enabled is None else body.enabled,
        misfire=body.misfire or "skip",
        overlap=body.overlap or "allow",
        retry=body.retry.model_dump(exclude_none=True) if body.retry else None,
    )


# Fields every schedule has: a PATCH leaves one out to keep it, and may not null it (a null
# would otherwise read as "the default", silently resuming a paused schedule).
NOT_NULLABLE = ("type", "payload", "timezone", "enabled", "misfire", "overlap")


def merged(current: dict[str, Any], patch: ScheduleFields) -> ScheduleCreate:
    """A PATCH laid over a schedule's current fields; giving one trigger clears the other.

    A null clears `start_at`, `end_at` or `retry`; a null in a field of NOT_NULLABLE, or one
    that leaves no trigger, raises InvalidSchedule naming each such field (loc
    `["body", field]`).
    """
    values = dict(current)
    given = patch.model_dump(exclude_unset=True)
    nulled = [field for field in NOT_NULLABLE if field in given and given[field] is None]
    if nulled:
        message = "may not be null: leave the field out to keep its value"
        raise InvalidSchedule(
            "invalid_schedule",
            f"{', '.join(nulled)} {message}",
            [{"loc": ["body", field], "message": message} for field in nulled],
        )
    if "cron" in given and given["cron"] is not None:
        values["interval_s"] = None
    if "interval_s" in given and given["interval_s"] is not None:
        values["cron"] = None
    values.update(given)
    if values.get("cron") is None and values.get("interval_s") is None:
        cleared = [f for f in ("cron", "interval_s") if f in given] or ["cron"]
        message = "give exactly one trigger: cron or interval_s (a null clears the current one)"
        raise InvalidSchedule(
            "invalid_schedule",
            message,
            [{"loc": ["body", field], "message": message} for field in cleared],
        )
    return ScheduleCreate.model_validate(values)
