"""The Celery app every worker, beat and Flower process loads (`celery -A workers.app`)."""

from __future__ import annotations

from celery import Celery

import workers.heartbeat
import workers.metrics
import workers.signals  # noqa: F401  (connects the process signals)
from config.celery import celery_config, check_delivery_settings
from config.logging import configure_logging
from config.production import require_safe_settings
from config.settings import Settings, get_settings
from workers.queues import task_routes


def create_app(settings: Settings) -> Celery:
    """Build the Celery app from settings; tasks register through `tasks.entry`."""
    check_delivery_settings(settings)
    require_safe_settings(settings)
    app = Celery("conveyor")
    app.conf.update(celery_config(settings))
    app.conf.update(
        task_routes=task_routes(),
        beat_schedule={},
        beat_scheduler="workers.beat:DatabaseScheduler",
        include=["tasks.entry", "tasks.purge"],
    )
    return app


configure_logging(get_settings())
app = create_app(get_settings())
import tasks.entry  # noqa: E402  (registers the shared tasks on this app)
import tasks.purge  # noqa: E402,F401
