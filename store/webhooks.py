"""Webhook endpoints and their deliveries as the API and the delivery worker see them.

Also what a job's callback deliveries (store/callbacks.py) share with an endpoint's: the
Target a delivery job resolves to, secret rotation, and the listing query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Row, Select, Table, delete, func, select, update
from sqlalchemy.orm import Session

from store.lifecycle import Runner
from store.models import Job
from store.states import JobState
from store.webhook_models import (
    DELIVERIES,
    ENDPOINTS,
    EVENTS,
    WebhookDelivery,
    WebhookEndpoint,
)


def create_endpoint(
    session: Session,
    tenant_id: uuid.UUID,
    url: str,
    description: str,
    event_types: list[str],
    secret_sealed: str,
    now: datetime,
) -> WebhookEndpoint:
    """Insert an enabled endpoint holding the encrypted secret."""
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        url=url,
        description=description,
        event_types=event_types,
        enabled=True,
        secret_sealed=secret_sealed,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(
    session: Session, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    """The tenant's endpoint, or None (another tenant's endpoint is not found either)."""
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
        )
    )


def list_endpoints(session: Session, tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
    """The tenant's endpoints, oldest first."""
    stmt = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(session.scalars(stmt))


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery rows (their jobs stay, and fail if run)."""
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)


def set_enabled(
    session: Session, endpoint: WebhookEndpoint, enabled: bool, reason: str | None, now: datetime
) -> None:
    """Enable (clearing the failure streak) or disable with a reason the tenant can read."""
    endpoint.enabled = enabled
    endpoint.disabled_reason = None if enabled else reason
    endpoint.disabled_at = None if enabled else now
    if enabled:
        endpoint.failing_since = None
    endpoint.updated_at = now


class SigningSecret(Protocol):
    """A row holding a sealed signing secret: an endpoint, or a tenant's callback secret."""

    secret_sealed: str
    previous_secret_sealed: str | None
    previous_secret_until: datetime | None
    updated_at: datetime


def rotate_secret(
    row: SigningSecret, new_sealed: str, grace_until: datetime, now: datetime
) -> None:
    """Make `new_sealed` the secret; the old one keeps signing until `grace_until`."""
    row.previous_secret_sealed = row.secret_sealed
    row.previous_secret_until = grace_until
    row.secret_sealed = new_sealed
    row.updated_at = now


@dataclass(frozen=True)
class Target:
    """What one delivery needs: where to (an endpoint, or a job's callback URL), whether it is
    enabled, the sealed secrets, the event, and the key of the in-flight cap it counts in."""

    endpoint_id: uuid.UUID | None  # None: a job's own callback URL
    url: str
    enabled: bool
    secrets_sealed: tuple[str, ...]  # current first, then the previous one within its grace
    event_id: uuid.UUID
    event_type: str
    event_data: dict[str, Any]
    event_created_at: datetime
    slot_key: str


def valid_secrets(
    current: str | None, previous: str | None, previous_until: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The sealed secrets that sign now: the current one, and the previous within its grace."""
    secrets = [current] if current else []
    if previous and previous_until and previous_until > now:
        secrets.append(previous)
    return tuple(secrets)


def target_columns(secrets: Table) -> tuple[ColumnElement[Any], ...]:
    """What `target_of` reads besides the URL: the signing secrets in `secrets`, and the event."""
    return (
        secrets.c.secret_sealed,
        secrets.c.previous_secret_sealed,
        secrets.c.previous_secret_until,
        EVENTS.c.id.label("event_id"),
        EVENTS.c.type,
        EVENTS.c.data,
        EVENTS.c.created_at,
    )


def target_of(
    row: Row[Any], now: datetime, *, endpoint_id: uuid.UUID | None, enabled: bool, slot_key: str
) -> Target:
    """The Target of a row selected with `url` and `target_columns`."""
    return Target(
        endpoint_id=endpoint_id,
        url=row.url,
        enabled=enabled,
        secrets_sealed=valid_secrets(
            row.secret_sealed, row.previous_secret_sealed, row.previous_secret_until, now
        ),
        event_id=row.event_id,
        event_type=row.type,
        event_data=row.data,
        event_created_at=row.created_at,
        slot_key=slot_key,
    )


def delivery_target(runner: Runner, job_id: uuid.UUID, now: datetime) -> Target | None:
    """The endpoint and event of delivery job `job_id`; None once the endpoint was deleted."""
    row = runner.execute(
        select(ENDPOINTS.c.id, ENDPOINTS.c.url, ENDPOINTS.c.enabled, *target_columns(ENDPOINTS))
        .select_from(
            DELIVERIES.join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id).join(
                EVENTS, EVENTS.c.id == DELIVERIES.c.event_id
            )
        )
        .where(DELIVERIES.c.job_id == job_id)
    ).one_or_none()
    if row is None:
        return None
    return target_of(row, now, endpoint_id=row.id, enabled=bool(row.enabled), slot_key=str(row.id))


def record_health(
    runner: Runner,
    endpoint_id: uuid.UUID,
    *,
    delivered: bool,
    gone: bool,
    now: datetime,
    disable_after: timedelta,
) -> str | None:
    """Track the endpoint's failure streak; disable it on `410 Gone` or a streak too long.

    Returns the reason it was disabled by this call, or None.
    """
    if delivered:
        runner.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return None
    runner.execute(
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_(None))
        .values(failing_since=now)
    )
    since = runner.execute(
        select(ENDPOINTS.c.failing_since, ENDPOINTS.c.enabled).where(ENDPOINTS.c.id == endpoint_id)
    ).one_or_none()
    if since is None or not since.enabled:
        return None
    if gone:
        reason = "the endpoint answered 410 Gone"
    elif since.failing_since is not None and now - since.failing_since >= disable_after:
        reason = f"every delivery failed since {since.failing_since.isoformat()}"
    else:
        return None
    runner.execute(
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
    )
    return reason


@dataclass(frozen=True)
class DeliveryView:
    """One delivery as listed: the job's state, attempts and next try, and its event."""

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


def delivery_listing(deliveries: Table, limit: int, *extra: ColumnElement[Any]) -> Select[Any]:
    """Rows of `deliveries` (an endpoint's or callbacks') with their job and event, newest first:
    a DeliveryView's columns, then `extra`; the caller adds which deliveries."""
    return (
        select(
            Job.id,
            deliveries.c.event_id,
            EVENTS.c.type,
            Job.state,
            Job.attempts,
            Job.next_attempt_at,
            Job.error,
            Job.created_at,
            Job.finished_at,
            *extra,
        )
        .select_from(
            deliveries.join(Job, Job.id == deliveries.c.job_id).join(
                EVENTS, EVENTS.c.id == deliveries.c.event_id
            )
        )
        .order_by(deliveries.c.created_at.desc(), Job.id)
        .limit(limit)
    )


def list_deliveries(
    session: Session, endpoint_id: uuid.UUID, state: str | None, limit: int
) -> list[DeliveryView]:
    """The endpoint's deliveries, newest first, optionally in one job state."""
    stmt = delivery_listing(DELIVERIES, limit).where(DELIVERIES.c.endpoint_id == endpoint_id)
    if state is not None:
        stmt = stmt.where(Job.state == state)
    return [DeliveryView(*row) for row in session.execute(stmt)]


def delivery_counts(session: Session, endpoint_id: uuid.UUID) -> dict[str, int]:
    """How many of the endpoint's deliveries are in each job state."""
    stmt = (
        select(Job.state, func.count())
        .select_from(DELIVERIES.join(Job, Job.id == DELIVERIES.c.job_id))
        .where(DELIVERIES.c.endpoint_id == endpoint_id)
        .group_by(Job.state)
    )
    return {str(state): int(count) for state, count in session.execute(stmt).all()}


def delivery_of(
    session: Session, endpoint_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[uuid.UUID, str, str] | None:
    """(id, type, queue) of the endpoint's delivery `job_id`, or None."""
    row = session.execute(
        select(Job.id, Job.type, Job.queue)
        .select_from(DELIVERIES.join(Job, Job.id == DELIVERIES.c.job_id))
        .where(DELIVERIES.c.endpoint_id == endpoint_id, DELIVERIES.c.job_id == job_id)
    ).one_or_none()
    return (row.id, row.type, row.queue) if row is not None else None


def undelivered_between(
    session: Session, endpoint_id: uuid.UUID, since: datetime, until: datetime, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, type, queue) of the endpoint's finished, undelivered deliveries in a time range."""
    stmt = (
        select(Job.id, Job.type, Job.queue)
        .select_from(DELIVERIES.join(Job, Job.id == DELIVERIES.c.job_id))
        .where(
            DELIVERIES.c.endpoint_id == endpoint_id,
            DELIVERIES.c.created_at >= since,
            DELIVERIES.c.created_at < until,
            Job.state.in_([JobState.FAILED.value, JobState.DEAD.value]),
        )
        .order_by(DELIVERIES.c.created_at)
        .limit(limit)
    )
    return [(row.id, row.type, row.queue) for row in session.execute(stmt)]
