"""Celery configuration derived from settings: JSON only, late acks, no result backend."""

from __future__ import annotations

import socket
from typing import Any

from kombu import Exchange, Queue  # type: ignore[attr-defined]

from config.settings import LEASE_MARGIN_S, Settings
from config.transport import TRANSPORT

QUEUES = ("payments", "data", "webhooks", "maintenance")
# Seconds between kombu's checks of its long-lived broker connections (and redis-py's PING of
# a connection idle that long).
BROKER_HEALTH_CHECK_S = 3
# TCP keepalives on broker sockets: first probe after 10 s idle, every 3 s, dead after 3.
BROKER_KEEPALIVE = {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 3, socket.TCP_KEEPCNT: 3}


def task_queues() -> tuple[Queue, ...]:
    """One direct exchange and queue per integration family, shared by producers and workers."""
    return tuple(
        Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]
        for name in QUEUES
    )


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration mapping every Conveyor process uses."""
    transport: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_timeout": settings.broker_timeout_s,
        "socket_connect_timeout": settings.broker_timeout_s,
        # A publish to a dead broker fails at once instead of kombu's default 2 s retry wait;
        # the row is committed already and the sweeper publishes it when the broker is back.
        "max_retries": 0,
        # A consumer whose BRPOP reply is overdue (a partition: nothing is refused, the socket
        # just stays silent) drops the connection and reconnects after brpop_timeout (1 s) +
        # 2 x this, instead of kombu's default 25 s (51 s in all).
        "health_check_interval": BROKER_HEALTH_CHECK_S,
        "socket_keepalive": True,
        "socket_keepalive_options": BROKER_KEEPALIVE,
    }
    if settings.broker_key_prefix:
        transport["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "broker_transport": TRANSPORT if settings.broker_url.startswith("redis://") else None,
        "broker_transport_options": transport,
        "broker_connection_timeout": settings.broker_timeout_s,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": not settings.unsafe_early_ack,
        "task_reject_on_worker_lost": not settings.unsafe_early_ack,
        "task_time_limit": settings.task_time_limit_s,
        "worker_prefetch_multiplier": 1,
        # Flower learns of tasks from the workers' events; a "sent" event per publish would
        # double the broker writes of every submit. Task events cost a worker about a sixth of
        # a no-op job's CPU, so they are off until Flower (or `celery control enable_events`)
        # asks for them; CONVEYOR_WORKER_TASK_EVENTS=true sends them from the start.
        "task_send_sent_event": False,
        "worker_send_task_events": settings.worker_task_events,
        "task_queues": task_queues(),
        "task_default_queue": "data",
        "task_create_missing_queues": True,
        # A publish that cannot reach the broker fails fast; the sweeper publishes later.
        "task_publish_retry": False,
        "worker_hijack_root_logger": False,
        "broker_channel_error_retry": True,
    }


class UnsafeDeliveryConfig(ValueError):
    """A combination of settings under which the broker would run a job twice or lose it."""


def check_delivery_settings(settings: Settings) -> None:
    """Refuse settings under which Redis redelivers a job that is still running."""
    visibility = settings.visibility_timeout_s
    limit = settings.task_time_limit_s
    if limit is not None and limit >= visibility:
        raise UnsafeDeliveryConfig(
            f"task time limit {limit}s must be below the visibility timeout {visibility}s: "
            "a task still running when the timeout passes is delivered again"
        )
    if settings.lease_s >= visibility:
        raise UnsafeDeliveryConfig(
            f"lease {settings.lease_s}s must be below the visibility timeout {visibility}s"
        )
    # The HTTP client ends an attempt within its deadline plus a read's slack, so a lease longer
    # than both cannot expire under a live attempt: no second worker and no second request in
    # flight for one job (docs/design.md §3).
    if settings.attempt_deadline_s + LEASE_MARGIN_S > settings.lease_s:
        raise UnsafeDeliveryConfig(
            f"attempt deadline {settings.attempt_deadline_s:g}s + {LEASE_MARGIN_S:g}s must not "
            f"exceed the lease {settings.lease_s}s, or a slow attempt is reclaimed while it "
            "still runs"
        )
