"""Publishing job ids to the broker, after the row is committed, never before (I4)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import structlog
from celery import Celery
from kombu import Producer  # type: ignore[attr-defined]

from config.celery import celery_config
from config.settings import Settings
from tasks.metrics import PUBLISH_FAILURES

log = structlog.get_logger(__name__)

# Redis commands per pipelined round trip when publishing many (one LPUSH per job).
PIPELINE_MAX = 1000
PERSISTENT = 2  # the AMQP delivery mode Celery gives task messages
LOGGED_IDS = 10  # job ids named in a failed publish's log line

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


def _send(app: Celery, job_id: uuid.UUID, task_name: str, queue: str, producer: Producer) -> None:
    # Celery's own protocol-2 message (`as_task_v2`, what `send_task` builds), published on the
    # anonymous exchange straight to the queue's list: no routing table, no per-message queue
    # declaration (workers declare their queues when they start), no result bookkeeping.
    args = [str(job_id)]
    task_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id, task_name, args, {}, ignore_result=True, argsrepr=repr(args), kwargsrepr="{}"
    )
    producer.publish(  # type: ignore[no-untyped-call]
        body,
        exchange="",
        routing_key=queue,
        serializer="json",
        headers=headers,
        delivery_mode=PERSISTENT,
        retry=False,
        declare=[],
        **properties,
    )


def publish(app: Celery, job_id: uuid.UUID, task_name: str, queue: str) -> bool:
    """Send one job id; False when the broker is unreachable (the sweeper re-publishes)."""
    return not publish_many(app, [(job_id, task_name, queue)])


def publish_many(app: Celery, jobs: Sequence[tuple[uuid.UUID, str, str]]) -> list[uuid.UUID]:
    """Send many job ids in pipelined round trips; returns the ids that may not have gone.

    kombu buffers the messages of a `Producer.batch` and sends them in one Redis pipeline per
    `PIPELINE_MAX` commands. A failed flush leaves delivery uncertain, so every id of the call
    counts as failed then: its row is stamped unpublished and the sweeper publishes it again
    (a copy that did arrive is a duplicate delivery the claim turns away).
    """
    if not jobs:
        return []
    try:
        with app.producer_or_acquire() as producer, producer.batch(max_size=PIPELINE_MAX):
            for job_id, task_name, queue in jobs:
                _send(app, job_id, task_name, queue, producer)
    except Exception as exc:  # no connection, or the broker went away mid-batch
        log.warning(
            "publish.failed",
            count=len(jobs),
            job_ids=[str(job_id) for job_id, _, _ in jobs[:LOGGED_IDS]],
            error=type(exc).__name__,
        )
        PUBLISH_FAILURES.inc(len(jobs))
        return [job_id for job_id, _, _ in jobs]
    return []
