"""Where each task goes: every job type to its family's queue, maintenance to its own."""

from __future__ import annotations

from typing import Any

from tasks.catalog import job_queues
from tasks.entry import PUBLISH_DUE_TASK, RECONCILE_TASK, SWEEP_TASK
from tasks.provider_events import APPLY_EVENT_TASK
from tasks.purge import PURGE_TASK


def task_routes() -> dict[str, dict[str, Any]]:
    """Every task name mapped to its family's queue."""
    routes: dict[str, dict[str, Any]] = {
        name: {"queue": queue} for name, queue in job_queues().items()
    }
    routes[PUBLISH_DUE_TASK] = {"queue": "maintenance"}
    routes[SWEEP_TASK] = {"queue": "maintenance"}
    routes[RECONCILE_TASK] = {"queue": "maintenance"}
    routes[PURGE_TASK] = {"queue": "maintenance"}
    routes[APPLY_EVENT_TASK] = {"queue": "payments"}
    return routes
