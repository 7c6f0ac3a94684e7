"""Before a provider call: is its breaker closed, and is there room under its rate limits?

The guard's state lives in Redis; Redis failing must never turn into a job failure. Before the
call, an unreachable guard defers the job (`Deferred`: no attempt is spent); after the call, the
provider's answer is what counts, so a breaker update that cannot reach Redis is skipped and
logged (`guard.record_skipped`).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings
from integrations.breaker import RedisBreaker
from integrations.errors import Deferred
from integrations.ratelimit import RedisRateLimiter

# How long a process trusts "breaker closed, no failures" before asking Redis again. A breaker
# opened by another process is seen at most this late; this process's own failures at once.
HEALTHY_CACHE_S = 0.5
# How long a job waits when the guard's Redis cannot be asked (a blip, or Redis restarting).
GUARD_UNAVAILABLE_WAIT_S = 2.0
# One reconnect per command and no sleeps between tries: redis-py's default retries a command
# ten times with growing sleeps, which would hold a worker slot for seconds while Redis is down.
GUARD_REDIS_RETRIES = 1

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Limit:
    """At most `count` calls in any `window_s` seconds."""

    count: int
    window_s: float


def parse_limits(spec: str) -> dict[str, Limit]:
    """`provider=N/seconds,…` (e.g. `sandbox=50/1`) → limits by provider; ValueError if bad."""
    limits: dict[str, Limit] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        provider, _, rate = item.partition("=")
        count, _, window = rate.partition("/")
        limit = Limit(int(count), float(window or 1))
        if not provider or limit.count < 1 or limit.window_s <= 0:
            raise ValueError(f"bad rate limit {item!r}: expected provider=N/seconds")
        limits[provider.strip()] = limit
    return limits


class ProviderGuard:
    """Breakers and rate limits for every provider, shared through Redis."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.prefix = f"{settings.broker_key_prefix}conveyor:"
        self.limiter = RedisRateLimiter(client)
        self.provider_limits = parse_limits(settings.rate_limits)
        self._healthy_until: dict[str, float] = {}
        self.tenant_limits = parse_limits(settings.tenant_rate_limits)

    def breaker(self, provider: str) -> RedisBreaker:
        """The breaker of one provider."""
        return RedisBreaker(
            self.client,
            f"{self.prefix}breaker:{provider}",
            threshold=self.settings.breaker_failure_threshold,
            open_s=self.settings.breaker_open_s,
            probe_timeout_s=self.settings.attempt_deadline_s,
        )

    def admit(self, provider: str, tenant_id: uuid.UUID) -> None:
        """Return when the call may go ahead; raise Deferred with the wait otherwise.

        Raises Deferred (wait `GUARD_UNAVAILABLE_WAIT_S`) when Redis cannot be asked.
        """
        try:
            self._admit(provider, tenant_id)
        except redis.RedisError as exc:
            log.warning("guard.unavailable", provider=provider, error=type(exc).__name__)
            raise Deferred(
                f"the guard for {provider} is unavailable ({type(exc).__name__})",
                GUARD_UNAVAILABLE_WAIT_S,
                cause="guard_unavailable",
            ) from exc

    def _admit(self, provider: str, tenant_id: uuid.UUID) -> None:
        if self._healthy_until.get(provider, 0.0) < time.monotonic():
            check = self.breaker(provider).check()
            if check.wait_s is not None:
                raise Deferred(
                    f"circuit breaker for {provider} is open", check.wait_s, cause="breaker_open"
                )
            if check.failures == 0 and not check.half_open:
                # Closed and clean: trust that for a moment instead of asking Redis per call.
                # Never while half-open: the probe's success must reach Redis to close it.
                self._healthy_until[provider] = time.monotonic() + HEALTHY_CACHE_S
        guard = self.settings.rate_limit_guard_s
        checks = [
            (f"{self.prefix}rate:{provider}", self.provider_limits.get(provider), "rate_limit"),
            (
                f"{self.prefix}rate:{provider}:{tenant_id}",
                self.tenant_limits.get(provider),
                "tenant_rate_limit",
            ),
        ]
        for key, limit, cause in checks:
            if limit is None:
                continue
            wait_s = self.limiter.acquire(key, limit.count, limit.window_s + guard)
            if wait_s > 0:
                raise Deferred(f"rate limit for {provider} reached", wait_s, cause=cause)

    def record(self, provider: str, healthy: bool) -> None:
        """Feed the breaker: a healthy answer closes it, a failure counts towards opening.

        Never raises for Redis: the call has happened and its outcome matters more than the
        breaker's bookkeeping, which is skipped (and logged) when Redis cannot be reached.
        """
        try:
            if healthy:
                if self._healthy_until.get(provider, 0.0) < time.monotonic():
                    self.breaker(provider).success()
                return
            self._healthy_until.pop(provider, None)
            self.breaker(provider).failure()
        except redis.RedisError as exc:
            log.warning(
                "guard.record_skipped",
                provider=provider,
                healthy=healthy,
                error=type(exc).__name__,
            )


_lock = threading.Lock()
_guards: dict[int, ProviderGuard] = {}


def get_guard(settings: Settings) -> ProviderGuard:
    """This process's guard, with its own Redis connection pool (re-made after fork)."""
    pid = os.getpid()
    with _lock:
        guard = _guards.get(pid)
        if guard is None or guard.settings is not settings:
            _guards.clear()
            url = settings.guard_redis_url or settings.broker_url
            client = redis.Redis.from_url(
                url,
                socket_timeout=settings.broker_timeout_s,
                socket_connect_timeout=settings.broker_timeout_s,
                retry=Retry(NoBackoff(), GUARD_REDIS_RETRIES),
            )
            guard = _guards[pid] = ProviderGuard(settings, client)
        return guard
