"""Tenants and their API keys: create, list, revoke, rotate, and resolve a presented key."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.models import ApiKey, AuditEvent, Tenant
from store.roles import Role
from store.types import utcnow

KEY_PREFIX = "cvk_"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key; the only moment its secret is known."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    secret: str
    role: Role = Role.TENANT
    expires_at: datetime | None = None


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


def create_api_key(
    session: Session,
    tenant_name: str,
    name: str = "",
    role: Role = Role.TENANT,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a new key for a tenant (created if needed); the secret is returned once."""
    tenant = ensure_tenant(session, tenant_name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(secret),
        name=name,
        role=role.value,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return IssuedKey(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        key_id=key.id,
        secret=secret,
        role=role,
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class KeyInfo:
    """A key as `conveyor keys list` shows it: never its secret or hash."""

    key_id: uuid.UUID
    tenant_name: str
    prefix: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def list_keys(session: Session, tenant_name: str | None = None) -> list[KeyInfo]:
    """Every key (of one tenant, when named), oldest first."""
    stmt = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
    if tenant_name is not None:
        stmt = stmt.where(Tenant.name == tenant_name)
    return [
        KeyInfo(
            key.id,
            tenant,
            key.prefix,
            key.name,
            Role(key.role),
            key.created_at,
            key.expires_at,
            key.last_used_at,
            key.revoked_at,
        )
        for key, tenant in session.execute(stmt.order_by(ApiKey.created_at, ApiKey.id))
    ]


def find_key(session: Session, key_ref: str) -> ApiKey | None:
    """A key by its id or its visible prefix (`cvk_abc123`)."""
    try:
        return session.get(ApiKey, uuid.UUID(key_ref))
    except ValueError:
        return session.scalars(select(ApiKey).where(ApiKey.prefix == key_ref)).first()


def audit_key_change(session: Session, key: ApiKey, actor: str, action: str) -> None:
    """Write the audit row of a key change (`key.create`, `key.revoke`, `key.rotate`)."""
    session.add(
        AuditEvent(
            tenant_id=key.tenant_id,
            actor=actor[:100],
            action=action,
            job_id=None,
            details={"key_id": str(key.id), "prefix": key.prefix, "role": key.role},
        )
    )


def revoke_key(session: Session, key: ApiKey, actor: str, now: datetime | None = None) -> bool:
    """Revoke a key (idempotent); True when this call revoked it. Audited."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = now or utcnow()
    audit_key_change(session, key, actor, "key.revoke")
    session.flush()
    return True


def rotate_key(session: Session, key: ApiKey, actor: str) -> IssuedKey:
    """Issue a replacement with the same tenant, role and expiry, then revoke the old key."""
    tenant = session.get(Tenant, key.tenant_id)
    assert tenant is not None
    issued = create_api_key(session, tenant.name, key.name, Role(key.role), key.expires_at)
    revoke_key(session, key, actor)
    new = session.get(ApiKey, issued.key_id)
    assert new is not None
    audit_key_change(session, new, actor, "key.rotate")
    return issued


def touch_key(session: Session, key_id: uuid.UUID, now: datetime) -> None:
    """Stamp a key's last use."""
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


@dataclass(frozen=True)
class KeyOwner:
    """Who presented a key: the tenant, and which key (for audit trails)."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str
    role: Role = Role.TENANT
    expires_at: datetime | None = None


def tenant_for_key(session: Session, secret: str, now: datetime | None = None) -> KeyOwner | None:
    """The owner of an active key, or None for an unknown, revoked or expired one."""
    now = now or utcnow()
    stmt = (
        select(
            Tenant.id,
            Tenant.name,
            ApiKey.id.label("key_id"),
            ApiKey.prefix,
            ApiKey.role,
            ApiKey.expires_at,
        )
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(
            ApiKey.key_hash == hash_key(secret),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        return None
    return KeyOwner(row.id, row.name, row.key_id, row.prefix, Role(row.role), row.expires_at)
