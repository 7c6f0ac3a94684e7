"""The provider guard with its Redis gone: it defers before a call and never raises after one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog

from config.settings import Settings
from integrations.breaker import BreakerState
from integrations.errors import Deferred
from integrations.guard import GUARD_UNAVAILABLE_WAIT_S, ProviderGuard, get_guard
from tests.e2e.stack import PrivateRedis

# A guard call against a dead Redis must answer well inside a worker's attempt.
BOUND_S = 2.5


@pytest.fixture
def guard_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test alone, holding only the guard's state."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _settings(server: PrivateRedis) -> Settings:
    return Settings(
        guard_redis_url=server.url,
        broker_key_prefix=f"cvtest-{uuid.uuid4().hex[:6]}:",
        rate_limits="sandbox=100/1",
        breaker_failure_threshold=2,
    )


def _client(server: PrivateRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)


def test_admit_defers_when_the_guards_redis_is_down(guard_redis: PrivateRedis) -> None:
    # Given a guard whose Redis answered once, then crashed
    guard = get_guard(_settings(guard_redis))
    guard.admit("sandbox", uuid.uuid4())
    guard_redis.crash()
    # When a call asks to go ahead
    started = time.monotonic()
    with pytest.raises(Deferred) as deferred:
        guard.admit("sandbox", uuid.uuid4())
    # Then it is deferred by the short guard wait, quickly, instead of a Redis error escaping
    assert deferred.value.wait_s == GUARD_UNAVAILABLE_WAIT_S
    assert "unavailable" in str(deferred.value)
    assert time.monotonic() - started < BOUND_S


def test_record_skips_the_breaker_update_and_logs_when_redis_is_down(
    guard_redis: PrivateRedis,
) -> None:
    # Given a guard that has not cached "healthy" (a half-open probe's situation), and one
    # that has, both of whose Redis crashed after their calls were admitted
    uncached = ProviderGuard(_settings(guard_redis), _client(guard_redis))
    cached = get_guard(_settings(guard_redis))
    cached.admit("sandbox", uuid.uuid4())
    guard_redis.crash()
    # When the outcomes of the calls are recorded, healthy and failed
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        uncached.record("sandbox", True)
        cached.record("sandbox", False)
    # Then nothing is raised, it is quick, and each skipped update is logged
    assert time.monotonic() - started < 2 * BOUND_S
    skipped = [line for line in logs if line["event"] == "guard.record_skipped"]
    assert [line["healthy"] for line in skipped] == [True, False]


def test_breaker_state_is_kept_once_redis_is_back(guard_redis: PrivateRedis) -> None:
    # Given a guard that lost Redis for a moment
    settings = _settings(guard_redis)
    guard = get_guard(settings)
    guard_redis.crash()
    with pytest.raises(Deferred):
        guard.admit("sandbox", uuid.uuid4())
    # When Redis is back on the same port
    guard_redis.start()
    # Then the guard admits again and feeds its breaker, with no restart
    guard.admit("sandbox", uuid.uuid4())
    guard.record("sandbox", False)
    guard.record("sandbox", False)
    assert guard.breaker("sandbox").state() is BreakerState.OPEN
    client = redis.Redis.from_url(guard_redis.url)
    assert client.exists(f"{settings.broker_key_prefix}conveyor:breaker:sandbox:open")
    client.close()
