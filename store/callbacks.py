"""Job callbacks: a tenant's callback signing secret, and deliveries to jobs' `callback_url`s.

A job submitted with a `callback_url` gets its terminal event delivered there (store/outbox.py
writes the delivery in the finishing transaction). Every such delivery is signed with the
tenant's one callback secret, kept here encrypted like an endpoint's, rotatable with a grace.
"""

from __future__ import annotations

import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.lifecycle import Runner
from store.webhook_models import (
    CALLBACK_DELIVERIES,
    CALLBACK_SECRETS,
    EVENTS,
    WebhookCallbackSecret,
)
from store.webhooks import (
    DeliveryView,
    Target,
    delivery_listing,
    target_columns,
    target_of,
)


def get_callback_secret(session: Session, tenant_id: uuid.UUID) -> WebhookCallbackSecret | None:
    """The tenant's callback secret row, or None before it was created."""
    return session.get(WebhookCallbackSecret, tenant_id)


def has_callback_secret(session: Session, tenant_id: uuid.UUID) -> bool:
    """Whether the tenant can sign callbacks (a submit with `callback_url` needs it)."""
    found = session.scalar(
        select(CALLBACK_SECRETS.c.tenant_id).where(CALLBACK_SECRETS.c.tenant_id == tenant_id)
    )
    return found is not None


def create_callback_secret(
    session: Session, tenant_id: uuid.UUID, sealed: str, now: datetime
) -> WebhookCallbackSecret:
    """Store the tenant's first callback secret (encrypted by the caller)."""
    row = WebhookCallbackSecret(
        tenant_id=tenant_id, secret_sealed=sealed, created_at=now, updated_at=now
    )
    session.add(row)
    session.flush()
    return row


def callback_target(runner: Runner, job_id: uuid.UUID, now: datetime) -> Target | None:
    """The URL, tenant's secrets and event of callback delivery job `job_id`, or None.

    In-flight deliveries are capped per (tenant, host), as an endpoint's are per endpoint.
    """
    row = runner.execute(
        select(
            CALLBACK_DELIVERIES.c.url,
            CALLBACK_DELIVERIES.c.tenant_id,
            *target_columns(CALLBACK_SECRETS),
        )
        .select_from(
            CALLBACK_DELIVERIES.join(EVENTS, EVENTS.c.id == CALLBACK_DELIVERIES.c.event_id).join(
                CALLBACK_SECRETS,
                CALLBACK_SECRETS.c.tenant_id == CALLBACK_DELIVERIES.c.tenant_id,
                isouter=True,
            )
        )
        .where(CALLBACK_DELIVERIES.c.job_id == job_id)
    ).one_or_none()
    if row is None:
        return None
    host = urllib.parse.urlsplit(row.url).hostname or ""
    return target_of(
        row, now, endpoint_id=None, enabled=True, slot_key=f"callback:{row.tenant_id}:{host}"
    )


@dataclass(frozen=True)
class CallbackDeliveryView(DeliveryView):
    """One callback delivery as listed: also the job it tells about, and where it went."""

    job_id: uuid.UUID | None
    url: str


def list_callback_deliveries(
    session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID | None, limit: int
) -> list[CallbackDeliveryView]:
    """The tenant's callback deliveries, newest first, optionally about one job."""
    stmt = delivery_listing(
        CALLBACK_DELIVERIES, limit, EVENTS.c.job_id, CALLBACK_DELIVERIES.c.url
    ).where(CALLBACK_DELIVERIES.c.tenant_id == tenant_id)
    if job_id is not None:
        stmt = stmt.where(EVENTS.c.job_id == job_id)
    return [CallbackDeliveryView(*row) for row in session.execute(stmt)]
