"""Operators' reads across tenants: jobs by filter, one job's attempts, the audit log,
schedules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from store.models import AuditEvent, Job, Schedule, Tenant


@dataclass(frozen=True)
class OpsFilter:
    """Which jobs an operator looks at; None means any. `types` narrows to a provider's types."""

    state: str | None = None
    type: str | None = None
    types: tuple[str, ...] | None = None
    error_class: str | None = None
    tenant: str | None = None


def find_jobs(session: Session, flt: OpsFilter, limit: int) -> list[tuple[Job, str]]:
    """Jobs of every tenant matching the filter, newest first, with their tenant's name."""
    stmt = select(Job, Tenant.name).join(Tenant, Tenant.id == Job.tenant_id)
    if flt.state:
        stmt = stmt.where(Job.state == flt.state)
    if flt.type:
        stmt = stmt.where(Job.type == flt.type)
    if flt.types is not None:
        stmt = stmt.where(Job.type.in_(flt.types))
    if flt.error_class:
        stmt = stmt.where(Job.error_class == flt.error_class)
    if flt.tenant:
        stmt = stmt.where(Tenant.name == flt.tenant)
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return [(job, name) for job, name in session.execute(stmt)]


def job_with_attempts(session: Session, job_id: uuid.UUID) -> tuple[Job, str] | None:
    """One job of any tenant with its attempts loaded, and its tenant's name."""
    stmt = (
        select(Job, Tenant.name)
        .join(Tenant, Tenant.id == Job.tenant_id)
        .where(Job.id == job_id)
        .options(selectinload(Job.attempt_rows))
    )
    row = session.execute(stmt).one_or_none()
    return (row[0], row[1]) if row is not None else None


def audit_log(session: Session, limit: int) -> list[tuple[AuditEvent, str]]:
    """The latest audit events of every tenant, newest first, with the tenant's name."""
    stmt = (
        select(AuditEvent, Tenant.name)
        .join(Tenant, Tenant.id == AuditEvent.tenant_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return [(event, name) for event, name in session.execute(stmt)]


def job_error(session: Session, job_id: uuid.UUID) -> dict[str, object] | None:
    """The stored `jobs.error` of one job (already redacted when it was written)."""
    error: dict[str, object] | None = session.scalar(select(Job.error).where(Job.id == job_id))
    return error


@dataclass(frozen=True)
class ScheduleView:
    """One schedule as an operator sees it: its trigger, last run and next slot."""

    scope: str  # `builtin`, or the tenant's id
    tenant: str  # the tenant's name, or `builtin`
    name: str
    job_type: str
    trigger: str  # `cron 0 * * * * Europe/Paris` or `every 60s`
    enabled: bool
    next_fire_at: datetime | None
    last_fire_time: datetime | None  # the slot it last fired for
    last_fired_at: datetime | None  # when beat fired it
    last_job_id: uuid.UUID | None
    last_job_state: str | None
    skipped_slots: int

    def late_s(self, now: datetime) -> float:
        """How far past its next slot an enabled schedule is at `now` (0 while not due)."""
        if not self.enabled or self.next_fire_at is None:
            return 0.0
        return max(0.0, (now - self.next_fire_at).total_seconds())

    @property
    def fire_delay_s(self) -> float | None:
        """How late after its slot the last firing came; None before the first."""
        if self.last_fired_at is None or self.last_fire_time is None:
            return None
        return max(0.0, (self.last_fired_at - self.last_fire_time).total_seconds())


def all_schedules(session: Session, limit: int) -> list[ScheduleView]:
    """Every schedule, the built-ins first, then by tenant and name, with its last job."""
    stmt = (
        select(Schedule, Tenant.name, Job.state)
        .outerjoin(Tenant, Tenant.id == Schedule.tenant_id)
        .outerjoin(Job, Job.id == Schedule.last_job_id)
        .order_by(Schedule.builtin.desc(), Tenant.name, Schedule.name)
        .limit(limit)
    )
    return [
        ScheduleView(
            scope=s.scope,
            tenant=tenant or "builtin",
            name=s.name,
            job_type=s.job_type,
            trigger=(
                f"cron {s.cron} {s.timezone}" if s.cron is not None else f"every {s.interval_s:g}s"
            ),
            enabled=s.enabled,
            next_fire_at=s.next_fire_at,
            last_fire_time=s.last_fire_time,
            last_fired_at=s.last_fired_at,
            last_job_id=s.last_job_id,
            last_job_state=state,
            skipped_slots=s.skipped_slots,
        )
        for s, tenant, state in session.execute(stmt)
    ]
