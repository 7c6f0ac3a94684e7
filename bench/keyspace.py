"""Redis keys of one benchmark: a prefix per system, staging a backlog, and cleaning up."""

from __future__ import annotations

import secrets

import redis

REDIS_URL = "redis://127.0.0.1:6379/0"
SCAN_BATCH = 1000


def new_prefix(system: str) -> str:
    """A key prefix no other run uses, e.g. `bench-1a2b3c4d-conveyor:`."""
    return f"bench-{secrets.token_hex(4)}-{system}:"


def client(url: str = REDIS_URL) -> redis.Redis:
    """A Redis client with short timeouts."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def release(conn: redis.Redis, prefix: str, staged: str, queue: str) -> None:
    """Move a staged backlog onto the queue a worker listens to, in one atomic RENAME.

    Kombu's Redis transport keeps a queue as the list `<prefix><queue>` and its consumer blocks on
    BRPOP, which Redis wakes on RENAME, so the worker sees the whole backlog at once.
    """
    conn.rename(f"{prefix}{staged}", f"{prefix}{queue}")


def queue_length(conn: redis.Redis, prefix: str, queue: str) -> int:
    """Messages waiting in a kombu queue."""
    return int(conn.llen(f"{prefix}{queue}"))


def delete_prefixed(conn: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix`; returns how many went."""
    deleted = 0
    batch: list[bytes] = []
    for key in conn.scan_iter(match=f"{prefix}*", count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            deleted += int(conn.delete(*batch))
            batch.clear()
    if batch:
        deleted += int(conn.delete(*batch))
    return deleted
