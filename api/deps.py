"""Request dependencies: settings, the database, and the tenant behind the API key."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.keycache import TtlCache
from api.ratelimit import RequestRateLimiter, client_address
from api.request_log import note_tenant
from api.shared_redis import limits_redis
from config.settings import Settings
from store.db import Database, get_database
from store.keys import KeyOwner, hash_key, tenant_for_key, touch_key
from store.roles import Role
from store.types import utcnow

# A key's last use is written at most this often per API instance (seconds).
LAST_USED_EVERY_S = 60.0
_touched: dict[uuid.UUID, float] = {}
_touched_lock = threading.Lock()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant the presented key belongs to."""

    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str
    role: Role = Role.TENANT
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How audit rows name this caller: the key's id and visible prefix."""
        return f"api_key:{self.key_id} ({self.key_prefix}…)"

    @property
    def is_operator(self) -> bool:
        """True for operator and admin keys (the ops routes, across tenants)."""
        return self.role.operates


# The dependencies are `async def` although they do no I/O on their common path: FastAPI runs
# each plain `def` dependency in the thread pool, a thread hop per dependency per request.


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_db(settings: SettingsDep) -> Database:
    """This process's database."""
    return get_database(settings)


DatabaseDep = Annotated[Database, Depends(get_db)]

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}

# Declares the scheme in the OpenAPI document; the 401 below is ours, in the one error shape.
bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")


async def current_principal(
    request: Request,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Resolve `Authorization: Bearer <key>` to its tenant, or answer 401.

    (Its rate was checked before routing: `api.ratelimit.KeyRateLimit`.)
    """
    secret = credentials.credentials.strip() if credentials is not None else ""
    if not secret:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send your key in the Authorization header, after 'Bearer '",
            headers=_UNAUTHORIZED_HEADERS,
        )
    return await principal_for_secret(request, db, secret.strip())


async def _charge_attempt(request: Request, digest: str) -> bool:
    """Charge one authentication attempt to the client address's budget, before the lookup.

    True when charged (to be given back if the key turns out good); False for a key this
    instance saw authenticate within KNOWN_GOOD_TTL_S. Raises `429 too_many_auth_failures`
    (with `Retry-After`) when the address's budget is spent: charged before the lookup, so any
    number of guesses sent at once is held to the burst (GCRA in Redis, every instance).
    """
    known: TtlCache[bool] = request.app.state.known_good
    if known.get(digest):
        return False
    limiter: RequestRateLimiter = request.app.state.auth_failures
    verdict = await limiter.hit(limits_redis(request.app), client_address(request.scope))
    if not verdict.admitted:
        raise ApiError(
            429,
            "too_many_auth_failures",
            "too many failed authentications from this address",
            {"retry_after_s": round(verdict.retry_after_s, 3)},
            headers={"Retry-After": verdict.retry_after_header},
        )
    return True


async def principal_for_secret(request: Request, db: Database, secret: str) -> Principal:
    """The principal behind an API key secret (cached for KEY_CACHE_TTL_S), or 401.

    A key not seen good lately is charged to the client address's budget of failed
    authentications first (`429 too_many_auth_failures` once it is spent); a good one gets
    its charge back. Concurrent requests with one key share one lookup (and one charge): a
    client's first burst after a restart is not taken for guessing.
    """
    cache: TtlCache[Principal] = request.app.state.key_cache
    digest = hash_key(secret)
    cached = cache.get(digest)
    if cached is not None and (cached.expires_at is None or cached.expires_at > utcnow()):
        note_tenant(cached.tenant_name)
        return cached
    owner = await _shared_lookup(request, db, secret, digest)
    if owner is None:
        raise ApiError(
            401, "unauthorized", "invalid or revoked API key", headers=_UNAUTHORIZED_HEADERS
        )
    principal = Principal(
        owner.tenant_id,
        owner.tenant_name,
        owner.key_id,
        owner.key_prefix,
        owner.role,
        owner.expires_at,
    )
    cache.put(digest, principal)
    note_tenant(principal.tenant_name)
    return principal


async def _shared_lookup(
    request: Request, db: Database, secret: str, digest: str
) -> KeyOwner | None:
    """One lookup per key in flight on this event loop; the others with the key await it."""
    loop = asyncio.get_running_loop()
    lookups: dict[str, asyncio.Future[KeyOwner | None]] = request.app.state.key_lookups
    pending = lookups.get(digest)
    if pending is not None and pending.get_loop() is loop:
        return await asyncio.shield(pending)
    future: asyncio.Future[KeyOwner | None] = loop.create_future()
    lookups[digest] = future
    try:
        owner = await _charged_lookup(request, db, secret, digest)
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waited
        raise
    except BaseException:
        future.cancel()
        raise
    else:
        future.set_result(owner)
        return owner
    finally:
        if lookups.get(digest) is future:
            del lookups[digest]


async def _charged_lookup(
    request: Request, db: Database, secret: str, digest: str
) -> KeyOwner | None:
    """Charge the address, look the key up, give the charge back if it is good."""
    charged = await _charge_attempt(request, digest)
    owner = await run_in_threadpool(_owner_of, db, secret)
    limiter: RequestRateLimiter = request.app.state.auth_failures
    known: TtlCache[bool] = request.app.state.known_good
    if owner is None:
        if not charged:  # once good, now revoked or expired: a failure like any other
            known.discard(digest)
            await limiter.hit(limits_redis(request.app), client_address(request.scope))
        return None
    if charged:
        await limiter.give_back(limits_redis(request.app), client_address(request.scope))
    known.put(digest, True)
    return owner


def _owner_of(db: Database, secret: str) -> KeyOwner | None:
    with db.session() as session:
        owner = tenant_for_key(session, secret)
        if owner is not None and _due_for_touch(owner.key_id):
            touch_key(session, owner.key_id, utcnow())
        return owner


def _due_for_touch(key_id: uuid.UUID) -> bool:
    now = time.monotonic()
    with _touched_lock:
        if now - _touched.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return False
        _touched[key_id] = now
        return True


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def operator_principal(principal: PrincipalDep) -> Principal:
    """The caller, if its key has the operator or admin role; 403 otherwise."""
    if not principal.is_operator:
        raise ApiError(403, "forbidden", "this route needs an operator or admin API key")
    return principal


OperatorDep = Annotated[Principal, Depends(operator_principal)]
