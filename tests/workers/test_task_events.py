"""Flower's task list is about jobs: the frequent maintenance tasks send no task events."""

from __future__ import annotations

from tasks.entry import JOB_TASKS, PUBLISH_DUE_TASK, RECONCILE_TASK, SWEEP_TASK
from workers.app import app


def test_publish_due_and_sweep_send_no_events_while_job_tasks_do() -> None:
    # Given the Celery app's registered tasks
    tasks = app.tasks
    # When their event switch is read / Then only the frequent maintenance passes are silent
    assert tasks[PUBLISH_DUE_TASK].send_events is False
    assert tasks[SWEEP_TASK].send_events is False
    assert tasks[RECONCILE_TASK].send_events is True
    assert all(tasks[name].send_events is True for name in JOB_TASKS)
