"""Tell waiting clients that a job finished: a Redis pub/sub notice per job someone waits for."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import structlog
from redis.client import PubSub

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


class Subscription:
    """A subscription to one job's end notice, made before the job can possibly end."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    def wait(self, timeout_s: float) -> bool:
        """True once the end is announced; False at the timeout or when Redis goes away."""
        deadline = time.monotonic() + timeout_s
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if self._pubsub.get_message(timeout=min(remaining, 1.0)) is not None:
                    return True
        except redis.RedisError:
            return False
        return False


@contextmanager
def subscribed(settings: Settings, job_id: uuid.UUID) -> Iterator[Subscription | None]:
    """Listen for `job_id`'s end; None when Redis cannot be reached (answer from the DB)."""
    try:
        pubsub = _client(settings).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(channel(settings, job_id))
    except redis.RedisError:
        yield None
        return
    try:
        yield Subscription(pubsub)
    finally:
        pubsub.close()
