"""Tenants' generic pull sources: a name and its JSON configuration."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.data_models import DataSource
from store.types import utcnow


def put_source(session: Session, tenant_id: uuid.UUID, name: str, config: dict[str, Any]) -> bool:
    """Create or replace a source's configuration; True when it was new."""
    row = session.get(DataSource, (tenant_id, name))
    now = utcnow()
    if row is None:
        session.add(
            DataSource(
                tenant_id=tenant_id, name=name, config=config, created_at=now, updated_at=now
            )
        )
        return True
    row.config = config
    row.updated_at = now
    return False


def get_source(session: Session, tenant_id: uuid.UUID, name: str) -> DataSource | None:
    """A tenant's source by name."""
    return session.get(DataSource, (tenant_id, name))


def list_sources(session: Session, tenant_id: uuid.UUID) -> list[DataSource]:
    """A tenant's sources by name."""
    stmt = select(DataSource).where(DataSource.tenant_id == tenant_id).order_by(DataSource.name)
    return list(session.scalars(stmt))
