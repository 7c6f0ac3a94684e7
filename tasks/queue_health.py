"""Is each queue with work being consumed? The DB backlog, the broker's lists and the heartbeats.

A queue *has work* when jobs wait in it (`queued` in the database) or messages sit in its Redis
list. Its verdict:

- `idle`: no work;
- `consuming`: work, and a live consumer that took a message within `CONVEYOR_CONSUMER_STALL_S`
  (or the work is younger than that);
- `stalled`: work older than `CONVEYOR_CONSUMER_STALL_S`, live consumers, and none took a
  message (or started) within it;
- `no_consumer`: work, and no live worker consumes the queue.

`/readyz` and `conveyor status` are not ready on `stalled` and `no_consumer`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import redis
import structlog

from config.celery import QUEUES
from config.settings import Settings
from store.backlog import QueueBacklog, queue_backlog
from store.db import get_database
from store.types import utcnow
from tasks import heartbeats
from tasks.heartbeats import Heartbeat

log = structlog.get_logger(__name__)


class Verdict(StrEnum):
    """Whether a queue's work is being taken."""

    IDLE = "idle"
    CONSUMING = "consuming"
    STALLED = "stalled"
    NO_CONSUMER = "no_consumer"


@dataclass(frozen=True)
class QueueHealth:
    """One queue: its work, its live consumers, and the verdict."""

    queue: str
    verdict: Verdict
    queued: int = 0
    in_broker: int | None = None  # None: the broker could not be read
    oldest_queued_age_s: float = 0.0
    consumers: tuple[str, ...] = ()
    last_consumed_s: float | None = None  # seconds since a live consumer last took a message

    @property
    def ready(self) -> bool:
        """Not ready when work waits with nobody (able) to take it."""
        return self.verdict in (Verdict.IDLE, Verdict.CONSUMING)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape `/readyz` answers with."""
        return {
            "verdict": self.verdict.value,
            "queued": self.queued,
            "in_broker": self.in_broker,
            "oldest_queued_age_s": round(self.oldest_queued_age_s, 3),
            "consumers": list(self.consumers),
            "last_consumed_s_ago": (
                None if self.last_consumed_s is None else round(self.last_consumed_s, 3)
            ),
        }


def assess(
    backlog: list[QueueBacklog],
    broker: dict[str, int],
    consumers: list[Heartbeat],
    now: float,
    stall_s: float,
) -> list[QueueHealth]:
    """Every Conveyor queue (and any other with jobs), with its verdict; pure."""
    by_queue = {b.queue: b for b in backlog}
    verdicts: list[QueueHealth] = []
    for queue in sorted({*QUEUES, *by_queue}):
        b = by_queue.get(queue, QueueBacklog(queue))
        mine = [c for c in consumers if queue in c.queues]
        taken = [c.consumed_at for c in mine if c.consumed_at is not None]
        last = max(0.0, now - max(taken)) if taken else None
        in_broker = broker.get(queue)
        if b.queued == 0 and not in_broker:
            verdict = Verdict.IDLE
        elif not mine:
            verdict = Verdict.NO_CONSUMER
        elif b.oldest_queued_age_s > stall_s and _idle_s(mine, now) > stall_s:
            verdict = Verdict.STALLED
        else:
            verdict = Verdict.CONSUMING
        verdicts.append(
            QueueHealth(
                queue=queue,
                verdict=verdict,
                queued=b.queued,
                in_broker=in_broker,
                oldest_queued_age_s=b.oldest_queued_age_s,
                consumers=tuple(sorted(c.worker for c in mine)),
                last_consumed_s=last,
            )
        )
    return verdicts


def _idle_s(consumers: list[Heartbeat], now: float) -> float:
    # Since the latest message any of them took, or since it started if it has taken none.
    return now - max(c.consumed_at or c.started_at for c in consumers)


def broker_lengths(settings: Settings) -> dict[str, int]:
    """Messages waiting in each queue's Redis list; {} when the broker cannot be read."""
    try:
        client = redis.Redis.from_url(settings.broker_url, socket_timeout=settings.broker_timeout_s)
        try:
            pipe = client.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(f"{settings.broker_key_prefix}{queue}")
            return dict(zip(QUEUES, (int(n) for n in pipe.execute()), strict=True))
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning("queues.broker_unavailable", error=type(exc).__name__)
        return {}


def check_queues(settings: Settings) -> list[QueueHealth]:
    """Every queue's verdict now; raises SQLAlchemyError or redis.RedisError when a source
    cannot be read (a broker that cannot be read shows as `in_broker` None)."""
    with get_database(settings).session() as session:
        backlog = queue_backlog(session, utcnow())
    consumers = heartbeats.live_now(settings)
    return assess(
        backlog, broker_lengths(settings), consumers, time.time(), settings.consumer_stall_s
    )
