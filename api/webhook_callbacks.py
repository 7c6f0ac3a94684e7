"""Job callbacks: the tenant's callback signing secret, the submit-time URL check, deliveries.

A job may carry its own `callback_url`; its terminal event goes there through the same outbox
and delivery path as an endpoint's, signed with the tenant's callback secret (created here,
shown once, stored encrypted with `CONVEYOR_WEBHOOK_SECRET_KEY`, rotatable with a grace).
The URL is checked at submit (`integrations/outbound.py`) and again at every delivery.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel

from api.deps import DatabaseDep, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from api.webhook_endpoints import DeliveryOut, RotateIn, grace_s_of
from config.settings import Settings
from integrations.outbound import OutboundRefused, Resolver, check_url, system_resolver
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.callbacks import (
    CallbackDeliveryView,
    create_callback_secret,
    get_callback_secret,
    has_callback_secret,
    list_callback_deliveries,
)
from store.db import Database
from store.replay import audit
from store.types import utcnow
from store.webhook_models import WebhookCallbackSecret
from store.webhooks import rotate_secret as rotate_signing_secret

router = APIRouter(tags=["webhooks"], route_class=JsonBodyRoute)

PATH = "/v1/webhook-callbacks"
FIELD = "callback_url"


def request_resolver(request: Request) -> Resolver:
    """The DNS resolver for outbound URL checks: the system's unless a test injected a stub.

    Memoised for the request, so a batch naming one callback host resolves it once.
    """
    injected: Resolver | None = getattr(request.app.state, "webhook_resolver", None)
    return functools.lru_cache(maxsize=64)(injected or system_resolver)


def checked_callback_url(
    url: str | None, settings: Settings, resolver: Resolver | None, loc: Sequence[str | int]
) -> str | None:
    """The callback URL once its every address passed the check; 422 naming the field if not."""
    if url is None:
        return None
    try:
        return check_url(url, allow_private=settings.outbound_allow_loopback, resolver=resolver).url
    except OutboundRefused as exc:
        raise ApiError(
            422,
            "url_refused",
            f"{FIELD}: {exc.message}",
            {"field": FIELD, "loc": [*loc, FIELD], "reason": exc.reason},
        ) from exc


def require_callback_secret(db: Database, tenant_id: uuid.UUID, loc: Sequence[str | int]) -> None:
    """Refuse (422, nothing written) a submit with a callback URL the tenant cannot sign."""
    with db.session() as session:
        if has_callback_secret(session, tenant_id):
            return
    raise ApiError(
        422,
        "callback_secret_missing",
        f"create the callback signing secret first: POST {PATH}/secret",
        {"field": FIELD, "loc": [*loc, FIELD]},
    )


class CallbackSecretOut(BaseModel):
    """The tenant's callback secret as shown; `secret` only when created or rotated."""

    created_at: datetime
    updated_at: datetime
    previous_secret_valid_until: datetime | None
    secret: str | None = None

    @classmethod
    def of(cls, row: WebhookCallbackSecret, secret: str | None = None) -> CallbackSecretOut:
        """The public view (never the stored secret)."""
        return cls(
            created_at=row.created_at,
            updated_at=row.updated_at,
            previous_secret_valid_until=row.previous_secret_until,
            secret=secret,
        )


class CallbackDeliveryOut(DeliveryOut):
    """One callback delivery: the job it is about, the URL, state, attempts and next try."""

    job_id: str | None
    url: str

    @classmethod
    def of_callback(cls, d: CallbackDeliveryView) -> Self:
        """The public view of a callback delivery."""
        return cls.of(d, job_id=str(d.job_id) if d.job_id else None, url=d.url)


@router.post(
    f"{PATH}/secret",
    response_model=CallbackSecretOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
)
def create_secret(
    principal: PrincipalDep, db: DatabaseDep, settings: SettingsDep
) -> CallbackSecretOut:
    """Create the tenant's callback signing secret; the answer shows it, this once."""
    secret = generate_secret()
    with db.session() as session:
        if get_callback_secret(session, principal.tenant_id) is not None:
            raise ApiError(
                409,
                "secret_exists",
                f"the callback secret exists; rotate it: POST {PATH}/secret/rotate",
                None,
            )
        row = create_callback_secret(
            session, principal.tenant_id, SecretBox(settings).seal(secret), utcnow()
        )
        audit(session, principal.tenant_id, principal.actor, "webhook_callbacks.create_secret", {})
        return CallbackSecretOut.of(row, secret)


@router.get(f"{PATH}/secret", response_model=CallbackSecretOut, responses=error_responses(404))
def read_secret(principal: PrincipalDep, db: DatabaseDep) -> CallbackSecretOut:
    """When the callback secret was made and rotated (never the secret itself)."""
    with db.session() as session:
        row = get_callback_secret(session, principal.tenant_id)
        if row is None:
            raise ApiError(404, "not_found", "no callback secret yet", None)
        return CallbackSecretOut.of(row)


@router.post(
    f"{PATH}/secret/rotate", response_model=CallbackSecretOut, responses=error_responses(404)
)
def rotate_secret(
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    body: RotateIn | None = None,
) -> CallbackSecretOut:
    """A new callback secret, shown this once; the old one also signs during the grace."""
    grace_s = grace_s_of(body, settings)
    secret = generate_secret()
    now = utcnow()
    with db.session() as session:
        row = get_callback_secret(session, principal.tenant_id)
        if row is None:
            raise ApiError(404, "not_found", "no callback secret yet", None)
        rotate_signing_secret(
            row, SecretBox(settings).seal(secret), now + timedelta(seconds=grace_s), now
        )
        audit(
            session,
            principal.tenant_id,
            principal.actor,
            "webhook_callbacks.rotate_secret",
            {"grace_s": grace_s},
        )
        session.flush()
        return CallbackSecretOut.of(row, secret)


@router.get(f"{PATH}/deliveries", response_model=list[CallbackDeliveryOut])
def deliveries(
    principal: PrincipalDep,
    db: DatabaseDep,
    job_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CallbackDeliveryOut]:
    """The tenant's callback deliveries, newest first (optionally about one job)."""
    with db.session() as session:
        views = list_callback_deliveries(session, principal.tenant_id, job_id, limit)
        return [CallbackDeliveryOut.of_callback(v) for v in views]
