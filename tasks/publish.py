"""Publishing job ids to the broker, after the row is committed, never before (I4)."""

from __future__ import annotations

import threading
import uuid

import structlog
from celery import Celery

from config.celery import celery_config
from config.settings import Settings

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_producers: dict[str, Celery] = {}


def producer_app(settings: Settings) -> Celery:
    """A Celery app used only to send messages (the API process has no worker app)."""
    key = f"{settings.broker_url}|{settings.broker_key_prefix}"
    with _lock:
        app = _producers.get(key)
        if app is None:
            app = Celery("conveyor-producer", set_as_current=False)
            app.conf.update(celery_config(settings))
            _producers[key] = app
        return app


def publish(app: Celery, job_id: uuid.UUID, task_name: str, queue: str) -> bool:
    """Send one job id; False when the broker is unreachable (the sweeper re-publishes)."""
    try:
        app.send_task(task_name, args=[str(job_id)], queue=queue, retry=False)
    except Exception as exc:  # kombu and redis raise many types; all mean "not published"
        log.warning("publish.failed", job_id=str(job_id), error=type(exc).__name__)
        return False
    return True
