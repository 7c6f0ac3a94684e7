"""Tell waiting clients that a job finished: one Redis pub/sub message per terminal job."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import redis
import structlog

from config.settings import Settings

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def _client(settings: Settings) -> redis.Redis:
    url = settings.guard_redis_url or settings.broker_url
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=settings.broker_timeout_s, socket_connect_timeout=1
            )
        return client


def channel(settings: Settings, job_id: uuid.UUID) -> str:
    """The pub/sub channel that announces the end of one job."""
    return f"{settings.broker_key_prefix}conveyor:done:{job_id}"


def notify_finished(settings: Settings, job_id: uuid.UUID, state: str) -> None:
    """Announce a terminal state; best effort (a waiter re-reads the DB at its deadline)."""
    try:
        _client(settings).publish(channel(settings, job_id), state)
    except redis.RedisError as exc:
        log.info("notify.failed", job_id=str(job_id), error=type(exc).__name__)


def wait_finished(
    settings: Settings, job_id: uuid.UUID, timeout_s: float, finished: Callable[[], bool]
) -> None:
    """Return once `finished()` is true or the job's end is announced, or at the timeout.

    Subscribes first and checks the DB second, so an end that happens in between is not missed.
    """
    try:
        pubsub = _client(settings).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(channel(settings, job_id))
    except redis.RedisError:
        return  # no notifications to be had: answer with what the DB says now
    try:
        if finished():
            return
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if pubsub.get_message(timeout=min(remaining, 1.0)) is not None:
                return
    except redis.RedisError:
        return
    finally:
        pubsub.close()
