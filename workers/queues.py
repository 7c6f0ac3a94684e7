"""Queue topology: one queue per integration family, and where each task goes."""

from __future__ import annotations

from typing import Any

from kombu import Queue  # type: ignore[attr-defined]

from config.celery import QUEUES
from integrations.registry import JOB_TYPES
from tasks.entry import PUBLISH_DUE_TASK, SWEEP_TASK


def task_queues() -> tuple[Queue, ...]:
    """The queues workers consume by default."""
    return tuple(Queue(name, routing_key=name) for name in QUEUES)  # type: ignore[no-untyped-call]


def task_routes() -> dict[str, dict[str, Any]]:
    """Every task name mapped to its family's queue."""
    routes: dict[str, dict[str, Any]] = {
        name: {"queue": jt.queue} for name, jt in JOB_TYPES.items()
    }
    routes[PUBLISH_DUE_TASK] = {"queue": "maintenance"}
    routes[SWEEP_TASK] = {"queue": "maintenance"}
    return routes
