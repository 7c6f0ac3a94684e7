"""The data-provider tables: stored records, sync state, pull sources and encrypted secrets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base
from store.types import utcnow

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RecordId = BigInteger().with_variant(Integer(), "sqlite")


class DataRecord(Base):
    """One record a provider returned, once per (tenant, provider, resource, natural key)."""

    __tablename__ = "data_records"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "provider", "resource", "natural_key", name="uq_data_records_key"
        ),
        Index("ix_data_records_changed", "tenant_id", "provider", "resource", "changed_at", "id"),
    )

    id: Mapped[int] = mapped_column(RecordId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    provider: Mapped[str] = mapped_column(String(50))
    resource: Mapped[str] = mapped_column(String(100))
    natural_key: Mapped[str] = mapped_column(String(255))
    data: Mapped[dict[str, Any]]
    # SHA-256 of the record's canonical JSON: an unchanged record keeps its data and changed_at.
    content_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID]  # the job that last fetched it
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataSync(Base):
    """Where one sync of a tenant's resource stands: its cursor and the counts of its pass."""

    __tablename__ = "data_syncs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(50), primary_key=True)
    resource: Mapped[str] = mapped_column(String(100), primary_key=True)
    # The next page to fetch; None: the next run starts a fresh pass from the first page.
    cursor: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[uuid.UUID | None]  # the job running (or that last ran) it
    pages: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    pass_started_at: Mapped[datetime | None]
    last_page_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]


class DataSource(Base):
    """A tenant's generic JSON pull: where to fetch, and how to read records and pages."""

    __tablename__ = "data_sources"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataSecret(Base):
    """A tenant's named secret, Fernet-encrypted; its plain value is never stored or returned."""

    __tablename__ = "data_secrets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


RECORDS = cast(Table, DataRecord.__table__)
SYNCS = cast(Table, DataSync.__table__)
