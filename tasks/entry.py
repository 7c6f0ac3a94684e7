"""Celery task entry points: one explicitly named task per job type, plus maintenance."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from celery import Task, shared_task

from config.settings import get_settings
from integrations.registry import JOB_TYPES
from store.outbox import CALLBACK_JOB_TYPE, DELIVERY_JOB_TYPE
from tasks.executor import execute
from tasks.maintenance import publish_due, sweep
from tasks.provider_events import APPLY_EVENT_TASK, apply_event
from tasks.reconcile import reconcile
from tasks.task_states import JobEnded, raise_for_flower
from tasks.webhooks import deliver

PUBLISH_DUE_TASK = "maintenance.jobs.publish_due"
SWEEP_TASK = "maintenance.jobs.sweep"
RECONCILE_TASK = "maintenance.payments.reconcile"


def _job_task(name: str) -> Task:
    # `throws`: a job that ended badly is an expected outcome, logged without a traceback.
    @shared_task(name=name, bind=True, ignore_result=True, throws=(JobEnded,))  # type: ignore[untyped-decorator]
    def run(self: Task, job_id: str) -> str:
        try:
            parsed = uuid.UUID(job_id)
            execution = execute(parsed, get_settings())
            raise_for_flower(get_settings(), parsed, execution)
            return execution.value
        finally:
            # The attempt bound job_id/correlation_id: the pool thread's next task starts clean.
            structlog.contextvars.clear_contextvars()

    return run


JOB_TASKS: dict[str, Any] = {name: _job_task(name) for name in JOB_TYPES}


@shared_task(name=DELIVERY_JOB_TYPE, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_webhook_task(self: Task, job_id: str) -> str:
    """One try of an outbound webhook delivery (queue `webhooks`), by its job id."""
    return deliver(uuid.UUID(job_id), get_settings())


@shared_task(name=CALLBACK_JOB_TYPE, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_callback_task(self: Task, job_id: str) -> str:
    """One try of a job's terminal event to its own `callback_url` (queue `webhooks`)."""
    return deliver(uuid.UUID(job_id), get_settings())


# The once-a-second publisher and the sweeper send no task events: they would be most of
# Flower's task list (Celery's `Task.send_events`); their work shows in /metrics instead.
@shared_task(name=PUBLISH_DUE_TASK, bind=True, ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]
def publish_due_task(self: Task) -> int:
    """Beat-driven: publish jobs whose delay or retry wait is over."""
    return publish_due(get_settings(), self.app)


@shared_task(name=SWEEP_TASK, bind=True, ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]
def sweep_task(self: Task) -> dict[str, int]:
    """Beat-driven: republish unclaimed jobs and reclaim expired leases."""
    return sweep(get_settings(), self.app)


@shared_task(name=APPLY_EVENT_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def apply_provider_event_task(self: Task, event_id: str) -> str:
    """Apply one recorded provider webhook, by its row id."""
    return apply_event(get_settings(), uuid.UUID(event_id))


@shared_task(name=RECONCILE_TASK, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile_task(self: Task) -> dict[str, int]:
    """Beat-driven: settle payments under review from the provider's truth; count findings."""
    findings = reconcile(get_settings())
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return counts
