"""What the worker processes need of the integrations, handed over by `tasks` (docs/design.md §2).

The queue of each job type (for Celery's routes) and a reset of the per-process HTTP client,
so a forked child never shares its parent's sockets.
"""

from __future__ import annotations

from integrations.http import reset_http_client
from integrations.registry import JOB_TYPES


def job_queues() -> dict[str, str]:
    """Task name (the job type's name) → the queue its jobs go to."""
    return {name: job_type.queue for name, job_type in JOB_TYPES.items()}


def reset_process_clients() -> None:
    """Forget this process's HTTP client (after fork, or between tests)."""
    reset_http_client()
