"""What a schedule may say, checked once for the API and the CLI alike.

The payload is validated exactly as a submitted job's: against its job type's payload model from
the registry, and stored in the dumped (normalised) form. Errors name the field they are about.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from integrations.registry import JOB_TYPES, get_job_type
from store.schedules import ScheduleSpec
from store.triggers import CronTrigger, IntervalTrigger, InvalidTrigger

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
RESERVED_PREFIX = "conveyor."  # the built-in maintenance schedules' names
MIN_INTERVAL_S = 1.0
Loc = tuple[str | int, ...]


class InvalidSchedule(ValueError):
    """A schedule that cannot be accepted: a stable code, a message, details naming fields."""

    def __init__(self, code: str, message: str, details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class RetryOverride(BaseModel):
    """Retry settings for the schedule's jobs; the server's caps still apply."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1, le=100)
    base_s: float | None = Field(default=None, gt=0, le=3600)
    cap_s: float | None = Field(default=None, gt=0, le=86400)
    max_age_s: float | None = Field(default=None, gt=0, le=30 * 86400)


class ScheduleFields(BaseModel):
    """Everything of a schedule but its name; every field optional (the shape of a PATCH)."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, min_length=1, max_length=100)
    payload: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=100, examples=["30 2 * * *"])
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])
    interval_s: float | None = Field(default=None, ge=MIN_INTERVAL_S, le=366 * 86400)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    enabled: bool | None = None
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
    """The payload as a submitted job of `job_type` would store it; InvalidSchedule otherwise."""
    found = get_job_type(job_type)
    if found is None:
        raise InvalidSchedule(
            "unknown_job_type",
            f"unknown job type {job_type!r}",
            {"loc": [*loc, "type"], "known_types": sorted(JOB_TYPES)},
        )
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
        model = found.payload_model.model_validate(payload)
    except ValidationError as exc:
        details = [
            {"loc": [*loc, "payload", *err["loc"]], "message": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidSchedule(
            "invalid_payload", f"payload is invalid for {job_type}", details
        ) from exc
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def _invalid(field: str, message: str, loc: Loc) -> InvalidSchedule:
    return InvalidSchedule(
        "invalid_schedule", message, [{"loc": [*loc, field], "message": message}]
    )


def check(body: ScheduleCreate, now: datetime, loc: Loc = ("body",)) -> ScheduleSpec:
    """A full schedule definition checked: trigger, zone, window, job type and payload.

    Raises InvalidSchedule naming the field at fault.
    """
    if body.name.startswith(RESERVED_PREFIX):
        raise _invalid("name", f"names starting {RESERVED_PREFIX!r} are reserved", loc)
    if (body.cron is None) == (body.interval_s is None):
        raise _invalid("cron", "give exactly one trigger: cron or interval_s", loc)
    timezone = body.timezone or "UTC"
    try:
        if body.cron is not None:
            CronTrigger(body.cron, timezone)
        else:
            assert body.interval_s is not None
            IntervalTrigger(body.interval_s, now)
            CronTrigger("* * * * *", timezone)  # the zone still has to exist (for display)
    except InvalidTrigger as exc:
        raise _invalid(exc.field, exc.message, loc) from None
    if body.start_at is not None and body.end_at is not None and body.end_at <= body.start_at:
        raise _invalid("end_at", "end_at must be after start_at", loc)
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


def merged(current: dict[str, Any], patch: ScheduleFields) -> ScheduleCreate:
    """A PATCH laid over a schedule's current fields; giving one trigger clears the other."""
    values = dict(current)
    given = patch.model_dump(exclude_unset=True)
    if "cron" in given and given["cron"] is not None:
        values["interval_s"] = None
    if "interval_s" in given and given["interval_s"] is not None:
        values["cron"] = None
    values.update(given)
    return ScheduleCreate.model_validate(values)
