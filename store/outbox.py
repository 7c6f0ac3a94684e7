"""The webhook outbox: event rows and their delivery jobs, written in the finishing transaction.

A job's end and its event commit together or not at all, so a finished job never misses its
event and no event exists for an unfinished job. Each (endpoint, event) pair gets one delivery
job (queue `webhooks`), committed `queued` in the same transaction: if the worker dies before
publishing it, the sweeper publishes it later. For an endpoint that is disabled the delivery is
written held (`failed`, code `endpoint_disabled`) and can be replayed once it is re-enabled.
A job submitted with its own `callback_url` gets one more delivery job of its terminal event
(`webhooks.callback.deliver`), to that URL, whether or not the tenant has endpoints.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, insert, select

from store.errors import JobError
from store.lifecycle import Runner
from store.models import JOBS
from store.states import ErrorClass, JobState
from store.webhook_models import CALLBACK_DELIVERIES, DELIVERIES, ENDPOINTS, EVENTS

DELIVERY_JOB_TYPE = "webhooks.endpoint.deliver"
CALLBACK_JOB_TYPE = "webhooks.callback.deliver"
DELIVERY_JOB_TYPES = frozenset({DELIVERY_JOB_TYPE, CALLBACK_JOB_TYPE})
DELIVERY_QUEUE = "webhooks"
HELD = JobError(
    ErrorClass.PERMANENT,
    "endpoint_disabled",
    "the endpoint was disabled: held until it is re-enabled and the delivery replayed",
)

# The one statement every finishing job with a terminal state pays for: an index lookup that
# finds nothing for a tenant without endpoints.
_SUBSCRIBERS = select(ENDPOINTS.c.id, ENDPOINTS.c.event_types, ENDPOINTS.c.enabled).where(
    ENDPOINTS.c.tenant_id == bindparam("p_tenant", type_=Uuid())
)


@dataclass(frozen=True)
class Subscriber:
    """An endpoint of the tenant: which event types it wants (empty: all), and if enabled."""

    id: uuid.UUID
    event_types: tuple[str, ...]
    enabled: bool

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribed to `event_type`."""
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True)
class NewEvent:
    """An event to write: its type (`job.succeeded`), the job it is about, its small data."""

    type: str
    job_id: uuid.UUID | None
    data: dict[str, Any]
    to_callback: bool = False  # also sent to the job's own callback URL (its terminal event)


@dataclass(frozen=True)
class DeliveryPolicy:
    """The retry policy and attempt budget a delivery job is created with."""

    retry_policy: dict[str, Any]
    max_attempts: int


def subscribers(runner: Runner, tenant_id: uuid.UUID) -> list[Subscriber]:
    """The tenant's endpoints (enabled or not)."""
    rows = runner.execute(_SUBSCRIBERS, {"p_tenant": tenant_id}).all()
    return [Subscriber(r.id, tuple(r.event_types or ()), bool(r.enabled)) for r in rows]


def write_events(
    runner: Runner,
    tenant_id: uuid.UUID,
    events: Sequence[NewEvent],
    targets: Sequence[Subscriber],
    policy: DeliveryPolicy,
    now: datetime,
    callback_url: str | None = None,
) -> list[tuple[uuid.UUID, str]]:
    """Insert the events and a delivery job per subscribed endpoint (and per `to_callback`
    event with a `callback_url`); returns (job id, job type) of those to publish.

    The caller's transaction commits them with whatever caused the events.
    """
    event_rows: list[dict[str, Any]] = []
    job_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    callback_rows: list[dict[str, Any]] = []
    publish: list[tuple[uuid.UUID, str]] = []
    for event in events:
        event_id = uuid.uuid4()
        event_rows.append(
            {
                "id": event_id,
                "tenant_id": tenant_id,
                "type": event.type,
                "job_id": event.job_id,
                "data": event.data,
                "created_at": now,
            }
        )
        if callback_url is not None and event.to_callback:
            job_id = uuid.uuid4()
            payload = {"event_id": str(event_id)}
            job_rows.append(
                _delivery_job(job_id, tenant_id, CALLBACK_JOB_TYPE, payload, True, policy, now)
            )
            callback_rows.append(
                {
                    "job_id": job_id,
                    "event_id": event_id,
                    "tenant_id": tenant_id,
                    "url": callback_url,
                    "created_at": now,
                }
            )
            publish.append((job_id, CALLBACK_JOB_TYPE))
        for target in targets:
            if not target.wants(event.type):
                continue
            job_id = uuid.uuid4()
            payload = {"endpoint_id": str(target.id), "event_id": str(event_id)}
            job_rows.append(
                _delivery_job(
                    job_id, tenant_id, DELIVERY_JOB_TYPE, payload, target.enabled, policy, now
                )
            )
            delivery_rows.append(
                {
                    "job_id": job_id,
                    "endpoint_id": target.id,
                    "event_id": event_id,
                    "tenant_id": tenant_id,
                    "created_at": now,
                }
            )
            if target.enabled:
                publish.append((job_id, DELIVERY_JOB_TYPE))
    if event_rows:
        runner.execute(insert(EVENTS), event_rows)
    if job_rows:
        runner.execute(insert(JOBS), job_rows)
    if delivery_rows:
        runner.execute(insert(DELIVERIES), delivery_rows)
    if callback_rows:
        runner.execute(insert(CALLBACK_DELIVERIES), callback_rows)
    return publish


def _delivery_job(
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    job_type: str,
    payload: dict[str, str],
    enabled: bool,
    policy: DeliveryPolicy,
    now: datetime,
) -> dict[str, Any]:
    held = not enabled
    return {
        "id": job_id,
        "tenant_id": tenant_id,
        "type": job_type,
        "queue": DELIVERY_QUEUE,
        "payload": payload,
        "state": JobState.FAILED.value if held else JobState.QUEUED.value,
        "idempotency_key": None,
        "request_hash": "",
        "attempts": 0,
        "deliveries": 0,
        "max_attempts": policy.max_attempts,
        "next_attempt_at": None,
        "enqueued_at": None if held else now,
        "correlation_id": None,
        "retry_policy": policy.retry_policy,
        "replays": 0,
        "notify_on_end": False,
        "error": HELD.to_json() if held else None,
        "error_class": HELD.error_class.value if held else None,
        "finished_at": now if held else None,
        "created_at": now,
        "updated_at": now,
    }
