"""The tables: tenants, their API keys, jobs and the attempts made at them, schedules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.states import JobState
from store.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Declarative base with our portable column types."""

    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        uuid.UUID: Uuid(),
    }


class Tenant(Base):
    """An organisation whose applications submit jobs; the unit of isolation."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A tenant's API key; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    role: Mapped[str] = mapped_column(String(20), default="tenant", server_default="tenant")
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Job(Base):
    """One unit of work a tenant submitted; the source of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_tenant_state_created", "tenant_id", "state", "created_at", "id"),
        Index("ix_jobs_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
        Index("ix_jobs_state_enqueued", "state", "enqueued_at"),
        Index("ix_jobs_tenant_error_class", "tenant_id", "error_class", "created_at"),
        Index("ix_jobs_state_queue_next", "state", "queue", "next_attempt_at"),
        Index("ix_jobs_state_type_error", "state", "type", "error_class"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    type: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED.value)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    correlation_id: Mapped[str | None] = mapped_column(String(100))
    enqueued_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    retry_policy: Mapped[dict[str, Any] | None]
    error_class: Mapped[str | None] = mapped_column(String(50))
    replays: Mapped[int] = mapped_column(Integer, default=0)
    # Someone waits for this job's end (a submit or read with `wait`): the worker that ends it
    # announces the end on Redis pub/sub; for jobs nobody waits on it skips that round trip.
    notify_on_end: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The submitter's own URL for this job's terminal event (address-checked at submit and at
    # delivery; signed with the tenant's callback secret: tasks/webhooks.py).
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    attempt_rows: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.number", lazy="raise"
    )


class Attempt(Base):
    """One try at a job: when, how it ended, what the provider said."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_job_number", "job_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    retry_after_s: Mapped[float | None] = mapped_column(Float)
    request_excerpt: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="attempt_rows")


class AuditEvent(Base):
    """Who did what to which jobs, for operator actions such as replays."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_tenant_created", "tenant_id", "created_at"),
        Index("ix_audit_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    job_id: Mapped[uuid.UUID | None]
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentKey(Base):
    """The idempotency key of one payment operation of a job, saved before its first call."""

    __tablename__ = "payment_keys"
    __table_args__ = (UniqueConstraint("provider", "idempotency_key", name="uq_payment_keys_key"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    operation: Mapped[str] = mapped_column(String(50), primary_key=True)
    provider: Mapped[str] = mapped_column(String(50))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """One effect at a payment provider; unique per job operation and per provider reference."""

    __tablename__ = "payment_ledger"
    __table_args__ = (
        UniqueConstraint("job_id", "operation", name="uq_ledger_job_operation"),
        UniqueConstraint(
            "provider", "operation", "provider_reference", name="uq_ledger_provider_reference"
        ),
        Index("ix_ledger_payment", "provider", "payment_reference"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="RESTRICT"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    provider: Mapped[str] = mapped_column(String(50))
    operation: Mapped[str] = mapped_column(String(50))
    provider_reference: Mapped[str] = mapped_column(String(255))
    payment_reference: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentHold(Base):
    """The amount a refund job reserves on its payment from submit until it lands or ends."""

    __tablename__ = "payment_holds"
    __table_args__ = (
        Index("ix_payment_holds_payment", "tenant_id", "provider", "payment_reference"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    provider: Mapped[str] = mapped_column(String(50))
    payment_reference: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]


class ProviderEvent(Base):
    """An inbound provider webhook, kept once per provider event id."""

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_provider_events_id"),
        # The sweeper's "received, never applied" scan stays small however many events exist.
        Index(
            "ix_provider_events_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider: Mapped[str] = mapped_column(String(50))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class Schedule(Base):
    """Work that fires on a trigger: a tenant's job template, or a built-in maintenance task.

    `scope` is the tenant id, or "builtin" for the maintenance entries declared in code, so
    names are unique per tenant and among built-ins alike. Every write bumps `version`; beat
    fires a slot only while the version it planned from still holds (compare and set).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("scope", "name", name="uq_schedules_scope_name"),
        Index("ix_schedules_enabled_next", "enabled", "next_fire_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(36))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A job type for tenants' schedules; the Celery task name for built-ins.
    job_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    retry: Mapped[dict[str, Any] | None]
    cron: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    interval_s: Mapped[float | None] = mapped_column(Float)
    anchor_at: Mapped[datetime]
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    misfire: Mapped[str] = mapped_column(String(10), default="skip")
    overlap: Mapped[str] = mapped_column(String(10), default="allow")
    next_fire_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    last_fire_time: Mapped[datetime | None]
    last_fired_at: Mapped[datetime | None]
    last_job_id: Mapped[uuid.UUID | None]
    skipped_slots: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduleRun(Base):
    """One slot of a schedule, once: the unique (schedule, fire_time) key no beat can repeat."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "fire_time", name="uq_schedule_runs_slot"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    fire_time: Mapped[datetime]
    # "slot" (the trigger's sequence) or "manual" (trigger now, outside the sequence)
    kind: Mapped[str] = mapped_column(String(10))
    # "fired" (job_id set), "skipped_overlap", "skipped_quota", "failed" (error says why)
    outcome: Mapped[str] = mapped_column(String(20))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named lease (beat's leadership): holder, expiry, and a fencing token bumped per take."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


# Purge walks terminal jobs by age on this index, in bounded batches.
Index("ix_jobs_state_finished", Job.state, Job.finished_at)


# Core handles on the two hot tables, for prebuilt statements that skip the ORM.
JOBS = cast(Table, Job.__table__)
ATTEMPTS = cast(Table, Attempt.__table__)

# The data-provider tables share this metadata (migrations compare against all of it).
from store import data_models as _data_models  # noqa: E402, F401
