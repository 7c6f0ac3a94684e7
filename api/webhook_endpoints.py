"""Tenants' webhook endpoints: register (the secret shown once), change, rotate, deliveries.

A URL is checked when it is registered or changed (`integrations/outbound.py`: http/https
only, every resolved address public) and again at every delivery.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from sqlalchemy.orm import Session

from api.deps import DatabaseDep, Principal, PrincipalDep, SettingsDep
from api.errors import ApiError
from api.inputs import Screened, Text, UtcDatetime
from api.jsonbody import JsonBodyRoute
from config.settings import Settings
from integrations.outbound import OutboundRefused, Resolver, check_url
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.db import Database
from store.jobs import mark_unpublished
from store.replay import audit, replay_job
from store.states import JobState
from store.types import utcnow
from store.webhook_models import WebhookEndpoint
from store.webhooks import (
    DeliveryView,
    create_endpoint,
    delete_endpoint,
    delivery_counts,
    delivery_of,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    rotate_secret,
    set_enabled,
    undelivered_between,
)
from tasks.policy import stored_policy
from tasks.publish import producer_app, publish
from tasks.webhooks import EVENT_TYPES

router = APIRouter(tags=["webhooks"], route_class=JsonBodyRoute)

URL_MAX = 2048
REPLAY_LIMIT_MAX = 1000


class EndpointIn(BaseModel):
    """A new endpoint: where to send, which event types (none: all), a note."""

    model_config = ConfigDict(extra="forbid")

    url: Screened = Field(min_length=1, max_length=URL_MAX)
    description: Screened = Field(default="", max_length=200)
    event_types: list[Text] = Field(default_factory=list, max_length=len(EVENT_TYPES))


class EndpointPatch(BaseModel):
    """Changes to an endpoint; `enabled: true` re-enables one that was disabled."""

    model_config = ConfigDict(extra="forbid")

    url: Screened | None = Field(default=None, min_length=1, max_length=URL_MAX)
    description: Screened | None = Field(default=None, max_length=200)
    event_types: list[Text] | None = Field(default=None, max_length=len(EVENT_TYPES))
    enabled: StrictBool | None = None


class EndpointOut(BaseModel):
    """An endpoint as shown; `secret` only in the answer that created or rotated it."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_valid_until: datetime | None
    created_at: datetime
    deliveries: dict[str, int] | None = None
    secret: str | None = None

    @classmethod
    def of(cls, e: WebhookEndpoint, **extra: Any) -> EndpointOut:
        """The public view of an endpoint row (never its stored secret)."""
        return cls(
            id=str(e.id),
            url=e.url,
            description=e.description,
            event_types=list(e.event_types or []),
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            disabled_at=e.disabled_at,
            failing_since=e.failing_since,
            previous_secret_valid_until=e.previous_secret_until,
            created_at=e.created_at,
            **extra,
        )


class RotateIn(BaseModel):
    """How long the old secret keeps signing (default `CONVEYOR_WEBHOOK_ROTATION_GRACE_S`)."""

    model_config = ConfigDict(extra="forbid")

    grace_s: float | None = Field(default=None, ge=0, le=7 * 86400, strict=True)


def grace_s_of(body: RotateIn | None, settings: Settings) -> float:
    """The grace the rotation asked for, or the configured default when it named none."""
    if body is None or body.grace_s is None:
        return settings.webhook_rotation_grace_s
    return body.grace_s


class DeliveryOut(BaseModel):
    """One delivery: its state, attempts and next try (the job with the same id)."""

    id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: DeliveryView, **extra: Any) -> Self:
        """The public view of a delivery; `extra`: a subclass's own fields."""
        return cls(
            id=str(d.id),
            event_id=str(d.event_id),
            event_type=d.event_type,
            state=d.state,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            error=d.error,
            created_at=d.created_at,
            finished_at=d.finished_at,
            **extra,
        )


class ReplayIn(BaseModel):
    """Replay the endpoint's undelivered (failed, dead, held) deliveries created in a range."""

    model_config = ConfigDict(extra="forbid")

    since: UtcDatetime
    until: UtcDatetime | None = None
    limit: StrictInt = Field(default=100, ge=1, le=REPLAY_LIMIT_MAX)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ReplayOut(BaseModel):
    """What a replay queued again."""

    replayed: int
    delivery_ids: list[str]


def _checked(request: Request, settings: Settings, url: str) -> str:
    resolver: Resolver | None = getattr(request.app.state, "webhook_resolver", None)
    try:
        return check_url(url, allow_private=settings.outbound_allow_loopback, resolver=resolver).url
    except OutboundRefused as exc:
        raise ApiError(
            422, "url_refused", exc.message, {"reason": exc.reason, "field": "url"}
        ) from exc


def _event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise ApiError(
            422,
            "validation_error",
            "unknown event types",
            {"unknown": unknown, "known": sorted(EVENT_TYPES)},
        )
    return sorted(set(types))


def _id(value: str, what: str = "endpoint") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ApiError(404, "not_found", f"no such {what}", {"id": value}) from exc


def _owned(session: Session, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    endpoint = get_endpoint(session, principal.tenant_id, _id(endpoint_id))
    if endpoint is None:
        raise ApiError(404, "not_found", "no such endpoint", {"id": endpoint_id})
    return endpoint


@router.post(
    "/v1/webhook-endpoints", response_model=EndpointOut, status_code=status.HTTP_201_CREATED
)
def create(
    body: EndpointIn,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    url = _checked(request, settings, body.url)
    types = _event_types(body.event_types)
    secret = generate_secret()
    with db.session() as session:
        endpoint = create_endpoint(
            session,
            principal.tenant_id,
            url,
            body.description,
            types,
            SecretBox(settings).seal(secret),
            utcnow(),
        )
        return EndpointOut.of(endpoint, secret=secret)


@router.get("/v1/webhook-endpoints", response_model=list[EndpointOut])
def list_all(principal: PrincipalDep, db: DatabaseDep) -> list[EndpointOut]:
    """The tenant's endpoints, oldest first."""
    with db.session() as session:
        return [EndpointOut.of(e) for e in list_endpoints(session, principal.tenant_id)]


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def read(endpoint_id: str, principal: PrincipalDep, db: DatabaseDep) -> EndpointOut:
    """One endpoint, with its deliveries counted by state."""
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        return EndpointOut.of(endpoint, deliveries=delivery_counts(session, endpoint.id))


@router.patch("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
def change(
    endpoint_id: str,
    body: EndpointPatch,
    request: Request,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Change the URL (checked again), event types, description, or enable/disable."""
    url = _checked(request, settings, body.url) if body.url is not None else None
    types = _event_types(body.event_types) if body.event_types is not None else None
    now = utcnow()
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        if url is not None:
            endpoint.url = url
        if types is not None:
            endpoint.event_types = types
        if body.description is not None:
            endpoint.description = body.description
        if body.enabled is not None and body.enabled != endpoint.enabled:
            set_enabled(session, endpoint, body.enabled, "disabled by the tenant", now)
        endpoint.updated_at = now
        session.flush()
        return EndpointOut.of(endpoint)


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def remove(endpoint_id: str, principal: PrincipalDep, db: DatabaseDep) -> Response:
    """Delete the endpoint; its pending deliveries fail when they next run."""
    with db.session() as session:
        delete_endpoint(session, _owned(session, principal, endpoint_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=EndpointOut)
def rotate(
    endpoint_id: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
    body: RotateIn | None = None,
) -> EndpointOut:
    """A new secret, shown this once; the old one also signs until the grace period ends."""
    grace_s = grace_s_of(body, settings)
    secret = generate_secret()
    now = utcnow()
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        rotate_secret(
            endpoint, SecretBox(settings).seal(secret), now + timedelta(seconds=grace_s), now
        )
        audit(
            session,
            principal.tenant_id,
            principal.actor,
            "webhook_endpoint.rotate_secret",
            {"endpoint_id": endpoint_id, "grace_s": grace_s},
        )
        session.flush()
        return EndpointOut.of(endpoint, secret=secret)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
def deliveries(
    endpoint_id: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The endpoint's deliveries, newest first: state, attempts and next try."""
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        views = list_deliveries(session, endpoint.id, state.value if state else None, limit)
        return [DeliveryOut.of(v) for v in views]


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayOut,
)
def retry(
    endpoint_id: str,
    delivery_id: str,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> ReplayOut:
    """Send one failed, dead or held delivery again, with the same `webhook-id`."""
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        found = delivery_of(session, endpoint.id, _id(delivery_id, "delivery"))
        if found is None:
            raise ApiError(404, "not_found", "no such delivery", {"id": delivery_id})
        replayed = _replay(session, principal, settings, [found])
        if not replayed:
            raise ApiError(
                409,
                "not_replayable",
                "only failed, dead or held deliveries can be retried",
                {"id": delivery_id},
            )
    _publish(db, settings, replayed)
    return ReplayOut(replayed=1, delivery_ids=[delivery_id])


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayOut,
)
def replay(
    endpoint_id: str,
    body: ReplayIn,
    principal: PrincipalDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> ReplayOut:
    """Send again every undelivered delivery of the endpoint created in [since, until)."""
    until = body.until or utcnow()
    if body.since >= until:
        raise ApiError(
            422, "validation_error", "since must be before until (now)", {"loc": ["body", "since"]}
        )
    with db.session() as session:
        endpoint = _owned(session, principal, endpoint_id)
        found = undelivered_between(session, endpoint.id, body.since, until, body.limit)
        replayed = _replay(session, principal, settings, found)
    _publish(db, settings, replayed)
    return ReplayOut(replayed=len(replayed), delivery_ids=[str(j) for j, _, _ in replayed])


def _replay(
    session: Session,
    principal: Principal,
    settings: Settings,
    found: list[tuple[uuid.UUID, str, str]],
) -> list[tuple[uuid.UUID, str, str]]:
    now = utcnow()
    done = []
    extra = stored_policy(settings, None).max_attempts
    for job_id, job_type, queue in found:
        if replay_job(session, job_id, principal.tenant_id, extra, now):
            done.append((job_id, job_type, queue))
            audit(
                session,
                principal.tenant_id,
                principal.actor,
                "webhook_delivery.retry",
                {},
                job_id=job_id,
            )
    return done


def _publish(db: Database, settings: Settings, jobs: list[tuple[uuid.UUID, str, str]]) -> None:
    app = producer_app(settings)
    for job_id, job_type, queue in jobs:
        if not publish(app, job_id, job_type, queue):
            with db.session() as session:
                mark_unpublished(session, job_id)
