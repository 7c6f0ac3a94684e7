"""The beat schedule built into Conveyor: publish due jobs and sweep orphans."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from tasks.entry import PUBLISH_DUE_TASK, RECONCILE_TASK, SWEEP_TASK

# Beat's own messages must never outlive their interval in the broker: a pass that would start
# later than one interval after its slot is dropped by the worker (Celery's `expires`), since
# the next one is already on its way. Queued behind busy workers, passes must not pile up.
MAINTENANCE_EXPIRES_FACTOR = 1


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Maintenance entries, each expiring if a worker has not picked it up in time."""
    return {
        "publish-due-jobs": {
            "task": PUBLISH_DUE_TASK,
            "schedule": settings.due_poll_s,
            "options": {
                "queue": "maintenance",
                "expires": settings.due_poll_s * MAINTENANCE_EXPIRES_FACTOR,
            },
        },
        "reconcile-payments": {
            "task": RECONCILE_TASK,
            "schedule": settings.reconcile_interval_s,
            "options": {"queue": "maintenance", "expires": settings.reconcile_interval_s},
        },
        "sweep-orphans": {
            "task": SWEEP_TASK,
            "schedule": settings.sweep_interval_s,
            "options": {
                "queue": "maintenance",
                "expires": settings.sweep_interval_s * MAINTENANCE_EXPIRES_FACTOR,
            },
        },
    }
