"""Tenants' named secrets, Fernet-encrypted at rest (AES-128-CBC + HMAC-SHA256, `cryptography`).

The key is `CONVEYOR_DATA_SECRET_KEY`; the plain value is only ever returned to the worker
that sends it, never by the API, never to a log.
"""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from store.data_models import DataSecret
from store.types import utcnow


class SecretKeyMissing(RuntimeError):
    """No usable `CONVEYOR_DATA_SECRET_KEY` is configured."""


class SecretUnreadable(RuntimeError):
    """A stored secret does not decrypt with the configured key (rotated or tampered)."""


def fernet(settings: Settings) -> Fernet:
    """The cipher for `CONVEYOR_DATA_SECRET_KEY`; SecretKeyMissing when unset or malformed."""
    key = settings.data_secret_key.get_secret_value()
    if not key:
        raise SecretKeyMissing("CONVEYOR_DATA_SECRET_KEY is not set")
    try:
        return Fernet(key.encode())
    except ValueError as exc:
        raise SecretKeyMissing("CONVEYOR_DATA_SECRET_KEY is not a Fernet key") from exc


def put_secret(
    session: Session, settings: Settings, tenant_id: uuid.UUID, name: str, value: str
) -> bool:
    """Store (or replace) a secret, encrypted; True when it was new."""
    token = fernet(settings).encrypt(value.encode()).decode()
    row = session.get(DataSecret, (tenant_id, name))
    now = utcnow()
    if row is None:
        session.add(
            DataSecret(
                tenant_id=tenant_id, name=name, ciphertext=token, created_at=now, updated_at=now
            )
        )
        return True
    row.ciphertext = token
    row.updated_at = now
    return False


def reveal_secret(
    session: Session, settings: Settings, tenant_id: uuid.UUID, name: str
) -> str | None:
    """The plain value of a secret, or None when the tenant has none by that name."""
    token = session.scalar(
        select(DataSecret.ciphertext).where(
            DataSecret.tenant_id == tenant_id, DataSecret.name == name
        )
    )
    if token is None:
        return None
    try:
        return fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(f"secret {name!r} does not decrypt with the configured key") from exc


def secret_names(session: Session, tenant_id: uuid.UUID) -> list[DataSecret]:
    """A tenant's secrets (names and dates; the ciphertext is not for the caller)."""
    stmt = select(DataSecret).where(DataSecret.tenant_id == tenant_id).order_by(DataSecret.name)
    return list(session.scalars(stmt))
