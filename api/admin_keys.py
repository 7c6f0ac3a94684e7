"""`/v1/admin/keys`: the key lifecycle over HTTP for admin keys (the CLI's `conveyor keys`).

Create (the secret is answered once), list (never secrets), revoke and rotate; each audited
under the key's tenant with the admin key as actor. A revoked key is refused within a second.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from api.deps import DatabaseDep, Principal, PrincipalDep
from api.errors import ApiError
from api.inputs import Name, Text
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from store.db import Database
from store.keys import (
    KeyInfo,
    audit_key_change,
    create_api_key,
    find_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from store.models import ApiKey
from store.roles import Role
from store.types import utcnow
from tasks.names import MAX_KEY_DAYS, MAX_NAME_LENGTH

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"], route_class=JsonBodyRoute)


async def admin_principal(principal: PrincipalDep) -> Principal:
    """The caller, if its key has the admin role; 403 otherwise."""
    if principal.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "managing keys needs an admin API key")
    return principal


AdminDep = Annotated[Principal, Depends(admin_principal)]


class KeyCreate(BaseModel):
    """A key to issue: its tenant (created when new), label, role and lifetime."""

    model_config = ConfigDict(extra="forbid")

    tenant: Name = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    name: Name = Field(default="", max_length=MAX_NAME_LENGTH)
    role: Role = Role.TENANT
    # Strict: `true` or "0.5" is not a number of days (a JSON integer is).
    expires_in_days: StrictFloat | None = Field(default=None, gt=0, le=MAX_KEY_DAYS)


class KeyOut(BaseModel):
    """A key as listed: never its secret or hash."""

    id: str
    tenant: str
    prefix: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: KeyInfo) -> KeyOut:
        """Render a listed key."""
        return cls(
            id=str(k.key_id),
            tenant=k.tenant_name,
            prefix=k.prefix,
            name=k.name,
            role=k.role,
            created_at=k.created_at,
            expires_at=k.expires_at,
            last_used_at=k.last_used_at,
            revoked_at=k.revoked_at,
        )


class KeyIssued(BaseModel):
    """A new key: `secret` is shown this once."""

    id: str
    tenant: str
    role: Role
    expires_at: datetime | None
    secret: str


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyIssued,
    responses=error_responses(403),
)
def create_key(body: KeyCreate, admin: AdminDep, db: DatabaseDep) -> KeyIssued:
    """Issue a key (audited `key.create`)."""
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with db.session() as session:
        issued = create_api_key(session, body.tenant, body.name, body.role, expires)
        key = session.get(ApiKey, issued.key_id)
        assert key is not None
        audit_key_change(session, key, admin.actor, "key.create")
    return KeyIssued(
        id=str(issued.key_id),
        tenant=issued.tenant_name,
        role=issued.role,
        expires_at=expires,
        secret=issued.secret,
    )


@router.get("", response_model=list[KeyOut], responses=error_responses(403))
def list_all(admin: AdminDep, db: DatabaseDep, tenant: Text | None = None) -> list[KeyOut]:
    """Every key (of one tenant with `?tenant=`), oldest first."""
    with db.session() as session:
        return [KeyOut.of(k) for k in list_keys(session, tenant)]


@router.post("/{key_ref}/revoke", response_model=KeyOut, responses=error_responses(403, 404))
def revoke(key_ref: str, admin: AdminDep, db: DatabaseDep) -> KeyOut:
    """Revoke a key by id or prefix (idempotent; audited `key.revoke`)."""
    with db.session() as session:
        key = find_key(session, key_ref)
        if key is None:
            raise ApiError(404, "not_found", "no such key", {"key": key_ref})
        revoke_key(session, key, admin.actor)
        key_id = key.id
    return _listed(db, key_id)


@router.post(
    "/{key_ref}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyIssued,
    responses=error_responses(403, 404),
)
def rotate(key_ref: str, admin: AdminDep, db: DatabaseDep) -> KeyIssued:
    """Issue a replacement with the same tenant, role and expiry; revoke the old key."""
    with db.session() as session:
        key = find_key(session, key_ref)
        if key is None or key.revoked_at is not None:
            raise ApiError(404, "not_found", "no such active key", {"key": key_ref})
        issued = rotate_key(session, key, admin.actor)
    return KeyIssued(
        id=str(issued.key_id),
        tenant=issued.tenant_name,
        role=issued.role,
        expires_at=issued.expires_at,
        secret=issued.secret,
    )


def _listed(db: Database, key_id: uuid.UUID) -> KeyOut:
    with db.session() as session:
        return next(KeyOut.of(k) for k in list_keys(session) if k.key_id == key_id)
