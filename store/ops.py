"""Operators' reads across tenants: jobs by filter, one job's attempts, the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from store.models import AuditEvent, Job, Tenant


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
