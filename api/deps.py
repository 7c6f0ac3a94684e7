"""Request dependencies: settings, the database, and the tenant behind the API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.keycache import TtlCache
from config.settings import Settings
from store.db import Database, get_database
from store.keys import hash_key, tenant_for_key


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant the presented key belongs to."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str

    @property
    def actor(self) -> str:
        """How audit rows name this caller: the key's id and visible prefix."""
        return f"api_key:{self.key_id} ({self.key_prefix}…)"


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_db(settings: SettingsDep) -> Database:
    """This process's database."""
    return get_database(settings)


DatabaseDep = Annotated[Database, Depends(get_db)]

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


def current_principal(request: Request, db: DatabaseDep) -> Principal:
    """Resolve `Authorization: Bearer <key>` to its tenant, or answer 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>'",
            headers=_UNAUTHORIZED_HEADERS,
        )
    cache: TtlCache[Principal] = request.app.state.key_cache
    digest = hash_key(secret.strip())
    cached = cache.get(digest)
    if cached is not None:
        return cached
    with db.session() as session:
        owner = tenant_for_key(session, secret.strip())
    if owner is None:
        raise ApiError(
            401, "unauthorized", "invalid or revoked API key", headers=_UNAUTHORIZED_HEADERS
        )
    principal = Principal(owner.tenant_id, owner.tenant_name, owner.key_id, owner.key_prefix)
    cache.put(digest, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
