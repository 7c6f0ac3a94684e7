"""Celery configuration derived from settings: JSON only, late acks, no result backend."""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue  # type: ignore[attr-defined]

from config.settings import Settings

QUEUES = ("payments", "data", "webhooks", "maintenance")


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
    }
    if settings.broker_key_prefix:
        transport["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_timeout": settings.broker_timeout_s,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_queues": task_queues(),
        "task_default_queue": "data",
        "task_create_missing_queues": True,
        # A publish that cannot reach the broker fails fast; the sweeper publishes later.
        "task_publish_retry": False,
        "worker_hijack_root_logger": False,
        "broker_channel_error_retry": True,
    }
