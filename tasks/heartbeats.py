"""Consumer heartbeats: which queues each live worker consumes and when it last took a message.

Each worker process writes one small record (`<prefix>conveyor:consumer:<worker>`, JSON) every
`CONVEYOR_WORKER_HEARTBEAT_S`, with a Redis expiry of `HEARTBEAT_EXPIRY_FACTOR` intervals, and
adds its name to an index set. A worker killed without a word (`kill -9`, a lost host) stops
writing and its record expires on Redis' clock; a clean stop deletes it at once. Readers take
the index, fetch the records and drop the names whose record has expired. Timestamps inside a
record are the worker's wall clock (hosts are expected to run NTP).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from config.settings import Settings

# A record lives this many heartbeat intervals: one or two late writes do not make a worker gone.
HEARTBEAT_EXPIRY_FACTOR = 3


@dataclass(frozen=True)
class Heartbeat:
    """One worker's last word: the queues it consumes and when it last took/finished a message."""

    worker: str  # Celery hostname and pid, e.g. `conveyor@host:4242`
    queues: tuple[str, ...]
    seen_at: float  # Unix time of this record
    started_at: float  # when this worker started consuming
    consumed_at: float | None = None  # last message taken from any of its queues
    finished_at: float | None = None  # last task finished in this process (threads/solo pools)


def expiry_s(settings: Settings) -> float:
    """How long after its last heartbeat a worker still counts as a live consumer."""
    return settings.worker_heartbeat_s * HEARTBEAT_EXPIRY_FACTOR


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the Redis holding shared state (the guard's, by default the broker's)."""
    return redis.Redis.from_url(
        settings.guard_redis_url or settings.broker_url,
        socket_timeout=settings.broker_timeout_s,
        socket_connect_timeout=settings.broker_timeout_s,
    )


def _index(settings: Settings) -> str:
    return f"{settings.broker_key_prefix}conveyor:consumers"


def _record(settings: Settings, worker: str) -> str:
    return f"{settings.broker_key_prefix}conveyor:consumer:{worker}"


def write(client: redis.Redis, settings: Settings, beat: Heartbeat) -> None:
    """Store one heartbeat (three commands in one round trip); raises redis.RedisError."""
    ttl_ms = int(expiry_s(settings) * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.set(_record(settings, beat.worker), json.dumps(asdict(beat)), px=ttl_ms)
    pipe.sadd(_index(settings), beat.worker)
    pipe.pexpire(_index(settings), ttl_ms)
    pipe.execute()


def remove(client: redis.Redis, settings: Settings, worker: str) -> None:
    """Forget a worker that stops cleanly; raises redis.RedisError."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(_record(settings, worker))
    pipe.srem(_index(settings), worker)
    pipe.execute()


def live(client: redis.Redis, settings: Settings) -> list[Heartbeat]:
    """Every worker whose heartbeat has not expired, by name; raises redis.RedisError."""
    names = sorted(n.decode() for n in client.smembers(_index(settings)))  # type: ignore[union-attr]
    if not names:
        return []
    records = client.mget([_record(settings, n) for n in names])
    found: list[Heartbeat] = []
    gone: list[str] = []
    for name, raw in zip(names, records, strict=True):
        if raw is None:
            gone.append(name)
            continue
        data = json.loads(raw)
        found.append(
            Heartbeat(
                worker=str(data["worker"]),
                queues=tuple(data["queues"]),
                seen_at=float(data["seen_at"]),
                started_at=float(data.get("started_at", data["seen_at"])),
                consumed_at=data.get("consumed_at"),
                finished_at=data.get("finished_at"),
            )
        )
    if gone:
        client.srem(_index(settings), *gone)
    return found


def live_now(settings: Settings) -> list[Heartbeat]:
    """`live` over a connection of its own (readiness, scrapes, the console); raises RedisError."""
    client = redis_client(settings)
    try:
        return live(client, settings)
    finally:
        client.close()
