"""A job whose provider works while the guard's Redis (breaker, limits) is down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from store.states import JobState
from tasks.executor import Execution, execute
from tests.e2e.stack import PrivateRedis
from tests.tasks.factories import CHARGE, load, make_due, make_job, sandbox_stats, with_sandbox

PSP_LATENCY_MS = 1500


@pytest.fixture
def guard_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server holding only the guard's state, which the test may crash."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _settings(settings: Settings, sandbox: str, server: PrivateRedis) -> Settings:
    return with_sandbox(settings, sandbox, guard_redis_url=server.url, rate_limits="sandbox=50/1")


def test_guard_down_before_the_call_defers_without_spending_an_attempt(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, guard_redis: PrivateRedis
) -> None:
    # Given a charge and a guard whose Redis is down
    s = _settings(settings, sandbox, guard_redis)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    guard_redis.crash()
    # When the job runs
    assert execute(job_id, s) is Execution.RETRYING
    # Then nothing reached the provider, the job waits, and its attempt count is unchanged
    job = load(s, job_id)
    assert sandbox_stats(sandbox)["requests"] == 0
    assert job.state == JobState.RETRYING and job.attempts == 0
    assert [(a.outcome, a.error_class) for a in job.attempt_rows] == [("deferred", "deferred")]
    # And once the guard's Redis is back, the same job succeeds with one charge
    guard_redis.start()
    make_due(s, job_id)
    assert execute(job_id, s) is Execution.SUCCEEDED
    assert sum(sandbox_stats(sandbox)["effects"].values()) == 1


def test_guard_down_during_the_call_keeps_the_providers_outcome(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, guard_redis: PrivateRedis
) -> None:
    # Given a charge admitted by the guard, whose provider answers after 1.5 s
    s = _settings(settings, sandbox, guard_redis)
    job_id = make_job(s, tenant_key.tenant_id, "payments.sandbox.charge", CHARGE)
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": PSP_LATENCY_MS}, timeout=5
    ).raise_for_status()
    results: list[Execution] = []
    runner = threading.Thread(target=lambda: results.append(execute(job_id, s)))
    runner.start()
    # When the guard's Redis dies while the provider call is in flight
    deadline = time.monotonic() + 5
    while sandbox_stats(sandbox)["requests"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    guard_redis.crash()
    runner.join(timeout=15)
    # Then the charge is recorded as it happened: succeeded, one attempt, one effect
    assert results == [Execution.SUCCEEDED]
    job = load(s, job_id)
    assert job.state == JobState.SUCCEEDED and job.attempts == 1
    assert [a.outcome for a in job.attempt_rows] == ["succeeded"]
    assert sum(sandbox_stats(sandbox)["effects"].values()) == 1
