"""The Redis breaker and rate limiter on a real Redis, as several processes would share them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import structlog

from config.settings import Settings
from integrations.breaker import BreakerState, RedisBreaker
from integrations.errors import Deferred
from integrations.guard import ProviderGuard, parse_limits
from integrations.ratelimit import RedisRateLimiter
from tests.conftest import REDIS_URL


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A Redis client; keys used here carry a random suffix and expire."""
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


def _breaker(client: redis.Redis, open_s: float = 0.3) -> RedisBreaker:
    return RedisBreaker(
        client, f"cvtest:breaker:{uuid.uuid4().hex}", threshold=3, open_s=open_s, probe_timeout_s=2
    )


def test_breaker_opens_after_threshold_consecutive_failures(client: redis.Redis) -> None:
    # Given a closed breaker with threshold 3
    breaker = _breaker(client)
    # When two failures, a success, then three failures happen
    breaker.failure()
    breaker.failure()
    breaker.success()
    for _ in range(2):
        breaker.failure()
    assert breaker.state() is BreakerState.CLOSED
    breaker.failure()
    # Then only the third consecutive failure opened it, and callers must wait
    assert breaker.state() is BreakerState.OPEN
    wait = breaker.allow()
    assert wait is not None and 0 < wait <= 0.3


def test_half_open_breaker_lets_exactly_one_probe_through(client: redis.Redis) -> None:
    # Given a breaker that opened and whose open period has passed
    breaker = _breaker(client, open_s=0.2)
    breaker.trip()
    time.sleep(0.3)
    assert breaker.state() is BreakerState.HALF_OPEN
    # When 20 callers ask at once (as many worker processes would)
    answers: list[float | None] = []
    threads = [threading.Thread(target=lambda: answers.append(breaker.allow())) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one may call and the others are told to wait
    assert answers.count(None) == 1
    assert all(a is not None and a > 0 for a in answers if a is not None)


def test_successful_probe_closes_and_failed_probe_reopens(client: redis.Redis) -> None:
    # Given a half-open breaker
    breaker = _breaker(client, open_s=0.1)
    breaker.trip()
    time.sleep(0.15)
    assert breaker.allow() is None  # the probe
    # When the probe fails, Then the breaker opens again at once
    breaker.failure()
    assert breaker.state() is BreakerState.OPEN
    time.sleep(0.15)
    assert breaker.allow() is None
    # When the next probe succeeds, Then it closes and everyone may call
    breaker.success()
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.allow() is None and breaker.allow() is None


def test_rate_limiter_admits_n_per_window_then_says_how_long_to_wait(client: redis.Redis) -> None:
    # Given a limit of 5 per 0.5 s
    limiter = RedisRateLimiter(client)
    key = f"cvtest:rate:{uuid.uuid4().hex}"
    # When 8 calls arrive at once
    waits = [limiter.acquire(key, 5, 0.5) for _ in range(8)]
    # Then 5 go, 3 are told to wait no longer than the window
    assert waits[:5] == [0.0] * 5
    assert all(0 < w <= 0.5 for w in waits[5:])
    # And after the wait a slot is free again
    time.sleep(max(waits[5:]) + 0.01)
    assert limiter.acquire(key, 5, 0.5) == 0.0


def test_parse_limits_reads_provider_rates_and_refuses_nonsense() -> None:
    limits = parse_limits("sandbox=50/1, stripe=100/2")
    assert (limits["sandbox"].count, limits["stripe"].window_s) == (50, 2.0)
    assert parse_limits("") == {}
    with pytest.raises(ValueError):
        parse_limits("sandbox=0/1")


def test_guard_defers_over_the_tenant_limit_but_not_another_tenant(client: redis.Redis) -> None:
    # Given a per-tenant limit of 2 per 10 s for the sandbox provider
    settings = Settings(
        broker_key_prefix=f"cvtest-{uuid.uuid4().hex[:6]}:", tenant_rate_limits="sandbox=2/10"
    )
    guard = ProviderGuard(settings, client)
    a, b = uuid.uuid4(), uuid.uuid4()
    # When tenant a makes three calls and tenant b one
    guard.admit("sandbox", a)
    guard.admit("sandbox", a)
    with pytest.raises(Deferred) as deferred:
        guard.admit("sandbox", a)
    guard.admit("sandbox", b)
    # Then only a's third call was deferred, with a wait inside the window
    assert 0 < deferred.value.wait_s <= 10.1


def test_successful_probe_through_the_guard_closes_the_breaker_for_every_process(
    client: redis.Redis,
) -> None:
    # Given two processes' guards sharing one breaker, opened by an outage whose open period
    # has passed
    settings = Settings(broker_key_prefix=f"cvtest-{uuid.uuid4().hex[:6]}:", breaker_open_s=0.2)
    prober, other = ProviderGuard(settings, client), ProviderGuard(settings, client)
    prober.breaker("sandbox").trip()
    time.sleep(0.3)
    # When one guard admits the probe and its call succeeds
    prober.admit("sandbox", uuid.uuid4())
    with pytest.raises(Deferred):
        other.admit("sandbox", uuid.uuid4())  # the others wait for the probe's verdict
    with structlog.testing.capture_logs() as logs:
        prober.record("sandbox", True)
    # Then the breaker is closed in Redis, said so in the log, and the other guard may call
    assert prober.breaker("sandbox").state() is BreakerState.CLOSED
    assert {"event": "breaker.state_changed", "state": "closed"}.items() <= next(
        line for line in logs if line["event"] == "breaker.state_changed"
    ).items()
    other.admit("sandbox", uuid.uuid4())
