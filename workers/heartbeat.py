"""The worker's consumer heartbeat: a daemon thread writing `tasks.heartbeats` records.

Started when the worker is ready, in the process that consumes the queues (with a prefork pool,
the parent: children execute, the parent takes messages). Taking a message (`task_received`)
and finishing one (`task_postrun`, seen here with the threads and solo pools) only set a
timestamp in memory; the thread writes them once per `CONVEYOR_WORKER_HEARTBEAT_S`, so Redis
sees one write per interval per worker whatever the job rate. A clean shutdown deletes the
record; a killed worker's record expires after `HEARTBEAT_EXPIRY_FACTOR` intervals.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis
import structlog
from celery.signals import task_postrun, task_received, worker_ready, worker_shutting_down

from config.settings import Settings, get_settings
from tasks import heartbeats
from tasks.heartbeats import Heartbeat

log = structlog.get_logger(__name__)


class HeartbeatThread(threading.Thread):
    """Writes this worker's heartbeat every interval until stopped."""

    def __init__(self, settings: Settings, consumer: Any) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.settings = settings
        self.consumer = consumer
        self.worker = f"{getattr(consumer, 'hostname', 'worker')}:{os.getpid()}"
        self.queues: tuple[str, ...] = ()
        self.started_at = time.time()
        self.consumed_at: float | None = None
        self.finished_at: float | None = None
        self.stopping = threading.Event()
        self.client = heartbeats.redis_client(settings)

    def current_queues(self) -> tuple[str, ...]:
        """The queues the consumer takes messages from now (the last known while reconnecting)."""
        task_consumer = getattr(self.consumer, "task_consumer", None)
        if task_consumer is not None:
            self.queues = tuple(sorted(q.name for q in task_consumer.queues))
        return self.queues

    def beat(self) -> None:
        """Write one heartbeat; a Redis failure is logged and the next interval tries again."""
        record = Heartbeat(
            worker=self.worker,
            queues=self.current_queues(),
            seen_at=time.time(),
            started_at=self.started_at,
            consumed_at=self.consumed_at,
            finished_at=self.finished_at,
        )
        try:
            heartbeats.write(self.client, self.settings, record)
        except redis.RedisError as exc:
            log.warning("worker.heartbeat_failed", error=type(exc).__name__)

    def run(self) -> None:
        """Beat until stopped."""
        while not self.stopping.is_set():
            self.beat()
            self.stopping.wait(self.settings.worker_heartbeat_s)

    def stop(self) -> None:
        """Stop beating and forget this worker at once."""
        self.stopping.set()
        try:
            heartbeats.remove(self.client, self.settings, self.worker)
        except redis.RedisError as exc:
            log.warning("worker.heartbeat_remove_failed", error=type(exc).__name__)


_thread: HeartbeatThread | None = None


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start(sender: Any = None, **_: Any) -> None:
    global _thread
    _thread = HeartbeatThread(get_settings(), sender)
    _thread.start()
    log.info("worker.heartbeat_started", worker=_thread.worker, queues=_thread.current_queues())


@task_received.connect  # type: ignore[untyped-decorator]
def _consumed(**_: Any) -> None:
    if _thread is not None:
        _thread.consumed_at = time.time()


@task_postrun.connect  # type: ignore[untyped-decorator]
def _finished(**_: Any) -> None:
    if _thread is not None:
        _thread.finished_at = time.time()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop(**_: Any) -> None:
    if _thread is not None:
        _thread.stop()
