"""One maintenance pass of a kind at a time across every worker: a Redis lock with an expiry.

Beat publishes a pass per interval; when workers are busy, several passes of one kind can wait
in the queue and then start together on different workers, each re-publishing the same stale
jobs. The lock makes the second one step aside. Its expiry frees it if the holder dies; a pass
that outlives it is still safe, because every row it moves is moved by a conditional UPDATE.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings

log = structlog.get_logger(__name__)

# A pass holds its lock at most this long (seconds); a dead holder blocks its kind no longer.
PASS_LOCK_TTL_S = 60.0

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}
# Locks whose release could not be confirmed, by kind (this process's only).
_orphans: dict[str, tuple[Any, str]] = {}


def _client(settings: Settings) -> redis.Redis:
    """This process's client for the broker's Redis (re-made after fork); fails fast."""
    key = (os.getpid(), settings.broker_url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(
                settings.broker_url,
                socket_timeout=settings.broker_timeout_s,
                socket_connect_timeout=settings.broker_timeout_s,
                retry=Retry(NoBackoff(), 1),
            )
        return client


@contextmanager
def exclusive(settings: Settings, kind: str, ttl_s: float = PASS_LOCK_TTL_S) -> Iterator[bool]:
    """Hold the lock of one kind of pass; yields False when another holds it (or Redis is down).

    The caller skips its pass on False: with the broker unreachable it could not publish
    anything, and the next pass comes one interval later. A lock this process may have left
    behind (its release, or the reply to its acquire, was lost with the connection) is released
    first, so a broker blip does not stop a kind of pass for a whole lock period.
    """
    _release_orphan(kind)
    name = f"{settings.broker_key_prefix}conveyor:maintenance:{kind}"
    lock = _client(settings).lock(name, timeout=ttl_s, blocking=False, thread_local=False)
    token = uuid.uuid4().hex
    try:
        held = bool(lock.acquire(token=token))
    except redis.RedisError as exc:
        log.warning("maintenance.lock_unavailable", kind=kind, error=type(exc).__name__)
        _orphans[kind] = (lock, token)  # the SET may have been applied with its reply lost
        held = False
    try:
        yield held
    finally:
        if held:
            try:
                lock.do_release(token)
            except redis.exceptions.LockNotOwnedError:
                pass  # expired, maybe taken by another pass: nothing of ours to undo
            except redis.RedisError as exc:
                log.warning("maintenance.lock_release_failed", kind=kind, error=type(exc).__name__)
                _orphans[kind] = (lock, token)


def _release_orphan(kind: str) -> None:
    orphan = _orphans.pop(kind, None)
    if orphan is None:
        return
    lock, token = orphan
    try:
        lock.do_release(token)  # compare-and-delete: only our own token is removed
    except redis.exceptions.LockError:
        pass  # not ours (never applied, expired or taken): nothing to undo
    except redis.RedisError:
        _orphans[kind] = orphan  # Redis still away: try again next pass
