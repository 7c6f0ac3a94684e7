"""`GET /metrics`: Prometheus text, this process's counters plus the backlog counted now.

The backlog, the stuck jobs and the breakers are read at scrape time (`BacklogCollector`): the
database is the truth of what waits, so no process has to keep a gauge of it. Access: a bearer
token (`CONVEYOR_METRICS_TOKEN`, compared in constant time); without one configured the route
answers 404, so metrics are never open by accident.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

import redis
import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SettingsDep
from api.errors import ApiError
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from config.celery import QUEUES
from config.settings import Settings
from store.backlog import QueueBacklog, queue_backlog, stuck_counts
from store.db import get_database
from store.ops import all_schedules
from store.types import utcnow
from tasks import heartbeats
from tasks.providers import provider_of, provider_statuses
from tasks.queue_health import broker_lengths

log = structlog.get_logger(__name__)
router = APIRouter(tags=["operations"], route_class=JsonBodyRoute)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "open", "half_open")
# Schedules shown per scrape (one series each, by scope and name); past this, the rest are left
# out: the lag of the built-ins, which sort first, is always there.
SCHEDULE_SERIES_MAX = 5000


class BacklogCollector(Collector):
    """Gauges counted at scrape time: queues (DB and broker), stuck jobs, breakers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        """Yield the backlog families; a failed source yields `conveyor_scrape_error`."""
        errors = GaugeMetricFamily(
            "conveyor_scrape_error", "1 when a source could not be read.", labels=["source"]
        )
        jobs = GaugeMetricFamily(
            "conveyor_queue_jobs",
            "Unfinished jobs per queue, counted in the database: queued (waiting for a worker), "
            "due (wait over, not yet published), scheduled (retry or run_at in the future), "
            "running.",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "conveyor_queue_oldest_age_seconds",
            "Age of the oldest queued job per queue (since it was published or requeued).",
            labels=["queue"],
        )
        due_lag = GaugeMetricFamily(
            "conveyor_queue_oldest_due_seconds",
            "How long the oldest due job has waited past its next_attempt_at to be published.",
            labels=["queue"],
        )
        stuck = GaugeMetricFamily(
            "conveyor_jobs_stuck",
            "Jobs in dead or needs_review, by provider, job type and error class.",
            labels=["state", "provider", "type", "error_class"],
        )
        db_ok = 0
        try:
            with get_database(self.settings).session() as session:
                backlog = queue_backlog(session, utcnow())
                stuck_rows = stuck_counts(session)
        except SQLAlchemyError as exc:
            log.warning("metrics.db_unavailable", error=type(exc).__name__)
            backlog, stuck_rows, db_ok = [], [], 1
        seen = {b.queue for b in backlog}
        for queue in QUEUES:
            if queue not in seen:
                backlog.append(QueueBacklog(queue))
        for b in sorted(backlog, key=lambda b: b.queue):
            for state in ("queued", "due", "scheduled", "running"):
                jobs.add_metric([b.queue, state], getattr(b, state))
            oldest.add_metric([b.queue], b.oldest_queued_age_s)
            due_lag.add_metric([b.queue], b.oldest_due_age_s)
        for row in stuck_rows:
            stuck.add_metric(
                [row.state, provider_of(row.type), row.type, row.error_class], row.count
            )
        errors.add_metric(["database"], db_ok)
        yield jobs
        yield oldest
        yield due_lag
        yield stuck
        yield from self._broker(errors)
        yield from self._breakers(errors)
        yield from self._consumers(errors)
        yield from self._schedules(errors)
        yield errors

    def _broker(self, errors: GaugeMetricFamily) -> Iterator[Metric]:
        length = GaugeMetricFamily(
            "conveyor_broker_queue_length",
            "Messages waiting in the broker's list for each queue (Redis LLEN).",
            labels=["queue"],
        )
        lengths = broker_lengths(self.settings)
        for queue, count in lengths.items():
            length.add_metric([queue], count)
        errors.add_metric(["broker"], 0 if lengths else 1)
        yield length

    def _breakers(self, errors: GaugeMetricFamily) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "conveyor_breaker_state",
            "1 for the state each provider's circuit breaker is in (closed, open, half_open).",
            labels=["provider", "state"],
        )
        failed = 0
        try:
            for status in provider_statuses(self.settings):
                if status.breaker not in BREAKER_STATES:  # `unknown`: Redis could not say
                    failed = 1
                    continue
                for state in BREAKER_STATES:
                    family.add_metric([status.provider, state], int(status.breaker == state))
        except redis.RedisError as exc:
            log.warning("metrics.breakers_unavailable", error=type(exc).__name__)
            failed = 1
        errors.add_metric(["breakers"], failed)
        yield family

    def _consumers(self, errors: GaugeMetricFamily) -> Iterator[Metric]:
        count = GaugeMetricFamily(
            "conveyor_queue_consumers",
            "Live workers consuming each queue (their heartbeat has not expired).",
            labels=["queue"],
        )
        last = GaugeMetricFamily(
            "conveyor_queue_last_consumed_seconds",
            "Seconds since a live consumer of the queue last took a message from it "
            "(absent while none has).",
            labels=["queue"],
        )
        failed = 0
        try:
            live = heartbeats.live_now(self.settings)
        except redis.RedisError as exc:
            log.warning("metrics.consumers_unavailable", error=type(exc).__name__)
            live, failed = [], 1
        now = time.time()
        for queue in QUEUES:
            mine = [c for c in live if queue in c.queues]
            count.add_metric([queue], len(mine))
            taken = [c.consumed_at for c in mine if c.consumed_at is not None]
            if taken:
                last.add_metric([queue], max(0.0, now - max(taken)))
        errors.add_metric(["consumers"], failed)
        yield count
        yield last

    def _schedules(self, errors: GaugeMetricFamily) -> Iterator[Metric]:
        labels = ["scope", "schedule"]
        lag = GaugeMetricFamily(
            "conveyor_schedule_lag_seconds",
            "How far past its next slot an enabled schedule is now (0 while not due): grows "
            "when no beat leads or beat cannot keep up.",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "conveyor_schedule_last_fired_timestamp_seconds",
            "Unix time a schedule last fired (absent until it has).",
            labels=labels,
        )
        delay = GaugeMetricFamily(
            "conveyor_schedule_last_fire_delay_seconds",
            "How late after its slot the schedule's last firing happened.",
            labels=labels,
        )
        failed = 0
        try:
            with get_database(self.settings).session() as session:
                views = all_schedules(session, SCHEDULE_SERIES_MAX)
        except SQLAlchemyError as exc:
            log.warning("metrics.schedules_unavailable", error=type(exc).__name__)
            views, failed = [], 1
        now = utcnow()
        for v in views:
            key = [v.scope, v.name]
            lag.add_metric(key, v.late_s(now))
            if v.last_fired_at is not None:
                last.add_metric(key, v.last_fired_at.timestamp())
            if v.fire_delay_s is not None:
                delay.add_metric(key, v.fire_delay_s)
        errors.add_metric(["schedules"], failed)
        yield lag
        yield last
        yield delay


def check_metrics_token(settings: Settings, authorization: str | None) -> None:
    """Raise ApiError 404 when metrics are off, 401 unless `Bearer <CONVEYOR_METRICS_TOKEN>`."""
    token = settings.metrics_token.get_secret_value()
    if not token:
        raise ApiError(404, "not_found", "metrics are off: set CONVEYOR_METRICS_TOKEN")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <metrics token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def registry_for(settings: Settings) -> CollectorRegistry:
    """A registry holding the scrape-time collector for these settings."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(settings))
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **error_responses(401, 404),
    },
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics of this API process and the backlog (bearer: the metrics token)."""
    check_metrics_token(settings, request.headers.get("Authorization"))
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(content=body, media_type=CONTENT_TYPE)
