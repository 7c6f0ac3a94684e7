"""Tenants and their API keys: create, and resolve a presented key to its tenant."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ApiKey, Tenant

KEY_PREFIX = "cvk_"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key; the only moment its secret is known."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    secret: str


def hash_key(secret: str) -> str:
    """SHA-256 of a key; keys are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_tenant(session: Session, name: str) -> Tenant:
    """The tenant with this name, created when missing."""
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).one_or_none()
    if tenant is None:
        tenant = Tenant(id=uuid.uuid4(), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_api_key(session: Session, tenant_name: str, name: str = "") -> IssuedKey:
    """Issue a new key for a tenant (created if needed); the secret is returned once."""
    tenant = ensure_tenant(session, tenant_name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(secret),
        name=name,
    )
    session.add(key)
    session.flush()
    return IssuedKey(tenant_id=tenant.id, tenant_name=tenant.name, key_id=key.id, secret=secret)


@dataclass(frozen=True)
class KeyOwner:
    """Who presented a key: the tenant, and which key (for audit trails)."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str


def tenant_for_key(session: Session, secret: str) -> KeyOwner | None:
    """The owner of an active key, or None for an unknown or revoked one."""
    stmt = (
        select(Tenant.id, Tenant.name, ApiKey.id.label("key_id"), ApiKey.prefix)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        return None
    return KeyOwner(row.id, row.name, row.key_id, row.prefix)
