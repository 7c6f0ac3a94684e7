"""A per-endpoint cap on deliveries in flight, shared by every worker through Redis.

Each delivery holds a slot (a member of a sorted set scored by its expiry) while it runs, so a
slow endpoint occupies at most `CONVEYOR_WEBHOOK_ENDPOINT_CONCURRENCY` worker threads and the
rest stay free for other tenants. A worker that dies leaves its slot to expire on its own.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from config.settings import Settings

# KEYS[1] the set; ARGV: now, expiry, cap, token. Drop expired slots, take one if below the cap.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil((ARGV[2] - ARGV[1]) * 1000))
return 1
"""
# A slot outlives its delivery's total deadline by this much before it counts as abandoned.
SLOT_MARGIN_S = 5.0


class EndpointSlots:
    """Acquire and release delivery slots of endpoints."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.client = client
        self.cap = settings.webhook_endpoint_concurrency
        self.hold_s = (
            settings.webhook_timeout_s + settings.webhook_connect_timeout_s + SLOT_MARGIN_S
        )
        self.prefix = f"{settings.broker_key_prefix}conveyor:webhook-slots:"
        self._acquire = client.register_script(_ACQUIRE)

    @contextmanager
    def slot(self, target: str) -> Iterator[bool]:
        """Yields True holding a slot of the target (an endpoint id, a tenant's callback host),
        or False when all are taken."""
        key = f"{self.prefix}{target}"
        token = uuid.uuid4().hex
        now = time.time()
        taken = bool(self._acquire(keys=[key], args=[now, now + self.hold_s, self.cap, token]))
        try:
            yield taken
        finally:
            if taken:
                self.client.zrem(key, token)


_lock = threading.Lock()
_slots: dict[tuple[int, str, str, int, float], EndpointSlots] = {}


def get_slots(settings: Settings) -> EndpointSlots:
    """This process's slot keeper, with its own Redis pool (re-made after fork)."""
    url = settings.guard_redis_url or settings.broker_url
    key = (
        os.getpid(),
        url,
        settings.broker_key_prefix,
        settings.webhook_endpoint_concurrency,
        settings.webhook_timeout_s,
    )
    with _lock:
        slots = _slots.get(key)
        if slots is None:
            if any(k[0] != key[0] for k in _slots):
                _slots.clear()  # a forked child drops its parent's pools
            client = redis.Redis.from_url(
                url, socket_timeout=settings.broker_timeout_s, socket_connect_timeout=1
            )
            slots = _slots[key] = EndpointSlots(settings, client)
        return slots
