"""structlog wired through the stdlib so Celery, uvicorn and our code log alike, redacted."""

from __future__ import annotations

import logging
import sys

import structlog

from config.redaction import redact_event
from config.settings import Settings

_configured = False

# Beat sends these every second or so: Celery's "received" / "succeeded" INFO lines for them
# would be most of a worker's log (their work shows in /metrics; failures still log). The
# names are `tasks.entry.PUBLISH_DUE_TASK` and `SWEEP_TASK` (config imports nothing of ours;
# tests/config/test_logging.py holds them equal).
ROUTINE_TASKS = frozenset({"maintenance.jobs.publish_due", "maintenance.jobs.sweep"})
_CELERY_TASK_LOGGERS = frozenset({"celery.worker.strategy", "celery.app.trace"})


def quiet_routine_tasks(record: logging.LogRecord) -> bool:
    """A logging filter: False for Celery's per-task INFO lines about a routine task."""
    if record.levelno > logging.INFO or record.name not in _CELERY_TASK_LOGGERS:
        return True
    args = record.args
    return not (isinstance(args, dict) and args.get("name") in ROUTINE_TASKS)


def configure_logging(settings: Settings) -> None:
    """Send every log line through structlog, JSON by default, once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # Level first: a line below the root level is dropped before any processor runs.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(quiet_routine_tasks)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                # Last before rendering, after tracebacks became text: every line, ours or a
                # library's, loses card numbers, CVCs and keys (config.redaction).
                redact_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
