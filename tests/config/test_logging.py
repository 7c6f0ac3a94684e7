"""Log lines honour the configured level; what passes is rendered as one JSON object per line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from tests.support.procs import ROOT

SCRIPT = """
import structlog
from config.logging import configure_logging
from config.settings import Settings
configure_logging(Settings(_env_file=None, log_level="WARNING", log_json=True))
log = structlog.get_logger("probe")
log.info("below.level", n=1)
log.warning("at.level", n=2)
"""


def test_lines_below_the_level_are_dropped_and_the_rest_are_json() -> None:
    # Given a process logging at WARNING, in JSON
    # When it logs one INFO and one WARNING line
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    # Then only the WARNING line is written, as JSON with its fields
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [(line["event"], line["n"], line["level"]) for line in lines] == [
        ("at.level", 2, "warning")
    ]


def _celery_record(logger: str, task: str, level: int = logging.INFO) -> logging.LogRecord:
    """A record as Celery's strategy and tracer log them: one dict of formatting args."""
    return logging.LogRecord(
        logger,
        level,
        __file__,
        1,
        "Task %(name)s[%(id)s] received",
        ({"name": task, "id": "x"},),
        None,
    )


def test_celerys_per_task_lines_about_the_once_a_second_tasks_are_left_out() -> None:
    from config.logging import ROUTINE_TASKS, quiet_routine_tasks
    from tasks.entry import PUBLISH_DUE_TASK, SWEEP_TASK

    # Given the routine tasks' names, as the tasks declare them
    assert {PUBLISH_DUE_TASK, SWEEP_TASK} == ROUTINE_TASKS
    # Then their "received"/"succeeded" INFO lines are dropped, from either Celery logger
    for logger in ("celery.worker.strategy", "celery.app.trace"):
        assert not quiet_routine_tasks(_celery_record(logger, PUBLISH_DUE_TASK))
    # And a job's task, a routine task's warning, and other loggers' lines are kept
    assert quiet_routine_tasks(_celery_record("celery.app.trace", "payments.stripe.charge"))
    assert quiet_routine_tasks(_celery_record("celery.app.trace", SWEEP_TASK, logging.ERROR))
    assert quiet_routine_tasks(_celery_record("tasks.executor", PUBLISH_DUE_TASK))
