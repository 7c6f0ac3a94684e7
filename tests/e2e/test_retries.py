"""Retries with real workers, beat, Redis and the sandbox: waits, breaker, rate limits, replay."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.replay import audit_events
from store.states import TERMINAL_STATES
from tasks.executor import Execution, execute
from tasks.publish import producer_app, publish
from tests.e2e.invariants import assert_invariants
from tests.e2e.stack import beat_process, stack_env, worker_process
from tests.support.procs import wait_until
from tests.tasks.factories import CHARGE, RATES, load, make_job, sandbox_stats, script_faults

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def s(fresh_settings: Settings) -> Settings:
    """A fresh SQLite file and a key prefix of this test's own."""
    return fresh_settings


def _publish_all(s: Settings, ids: list[uuid.UUID], job_type: str, queue: str) -> None:
    app = producer_app(s)
    for job_id in ids:
        assert publish(app, job_id, job_type, queue)


def _wait_terminal(s: Settings, ids: list[uuid.UUID], what: str, timeout: float) -> None:
    wait_until(lambda: all(load(s, i).state in TERMINAL_STATES for i in ids), what, timeout)


def test_503_then_429_retry_after_then_200_succeeds_on_the_third_attempt_with_one_key(
    s: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a PSP answering 503, then 429 with Retry-After: 2, then normally
    script_faults(sandbox, {"status": 503}, {"status": 429, "retry_after": 2})
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox)
    job_id = make_job(s, key.tenant_id, "payments.sandbox.charge", CHARGE, max_attempts=5)
    # When a worker and beat run the charge
    with beat_process(env, logs_dir), worker_process(env, logs_dir):
        _publish_all(s, [job_id], "payments.sandbox.charge", "payments")
        _wait_terminal(s, [job_id], "the charge to finish after two retries", 30)
    # Then it succeeded on attempt 3, the wait after the 429 was at least 2 s,
    # and all three requests carried the same idempotency key, with one effect
    job = load(s, job_id)
    attempts = job.attempt_rows
    assert job.state == "succeeded"
    assert [(a.outcome, a.http_status) for a in attempts] == [
        ("retry", 503),
        ("retry", 429),
        ("succeeded", 201),
    ]
    assert attempts[2].started_at - attempts[1].finished_at >= timedelta(seconds=2)
    assert attempts[1].retry_after_s == 2.0
    stats = sandbox_stats(sandbox)
    assert stats["keys_seen"] == {f"cv-{job_id}-charge": 3}
    assert stats["effects"] == {f"cv-{job_id}-charge": 1}


def test_breaker_bounds_calls_during_an_outage_and_jobs_are_deferred_not_dead(
    s: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given 100 jobs, a provider down for 4 s, and a breaker opening after 5 failures for 1 s
    env = stack_env(
        s.database_url,
        s.broker_key_prefix,
        sandbox,
        breaker_failure_threshold="5",
        breaker_open_s="1",
    )
    ids = [
        make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES, max_attempts=4)
        for _ in range(100)
    ]
    with beat_process(env, logs_dir), worker_process(env, logs_dir):
        requests.post(
            f"{sandbox}/_sandbox/faults",
            json={"outage": {"status": 503, "seconds": 4}},
            timeout=5,
        ).raise_for_status()
        _publish_all(s, ids, "data.sandbox.fetch_rates", "data")
        # When the outage runs its course
        wait_until(
            lambda: sandbox_stats(sandbox)["outage_remaining_s"] == 0, "the outage to end", 10
        )
        during = sandbox_stats(sandbox)["by_path"].get("/v1/rates", 0)
        _wait_terminal(s, ids, "all 100 jobs to finish after the outage", 60)
    # Then the provider saw few calls while down: the threshold, the calls already in flight,
    # and one probe per open period; not 100 jobs times their attempts
    print(f"\noutage: calls during 4 s outage={during} for 100 jobs")
    assert during <= 5 + 4 + 4 + 4, during
    # And every job succeeded after recovery; deferrals did not use up attempts
    report = assert_invariants(s, ids, sandbox)
    assert report.states == {"succeeded": 100}
    deferred = sum(1 for i in ids for a in load(s, i).attempt_rows if a.outcome == "deferred")
    assert deferred > 0


def test_provider_rate_limit_holds_across_two_worker_processes(
    s: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a limit of 5 calls per second to the sandbox, and two worker processes
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, rate_limits="sandbox=5/1")
    ids = [make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES) for _ in range(30)]
    with (
        beat_process(env, logs_dir),
        worker_process(env, logs_dir, "rl1"),
        worker_process(env, logs_dir, "rl2"),
    ):
        # When 30 jobs are published at once
        _publish_all(s, ids, "data.sandbox.fetch_rates", "data")
        _wait_terminal(s, ids, "30 rate-limited jobs to finish", 60)
    # Then the provider never saw more than 5 in any second, and every job succeeded
    stats = sandbox_stats(sandbox)
    print(f"\nrate limit 5/s: max seen in any second={stats['max_in_any_second']['/v1/rates']}")
    assert stats["max_in_any_second"]["/v1/rates"] <= 5
    assert stats["by_path"]["/v1/rates"] == 30
    assert {load(s, i).state for i in ids} == {"succeeded"}


def test_replaying_50_dead_jobs_by_filter_reruns_them_with_their_original_keys(
    s: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given 50 charges that died after one attempt whose response was lost (the PSP did charge)
    s1 = s.model_copy(update={"sandbox_url": sandbox, "breaker_failure_threshold": 1000})
    ids = [
        make_job(s1, key.tenant_id, "payments.sandbox.charge", {**CHARGE, "amount": 100 + n}, 1)
        for n in range(50)
    ]
    script_faults(sandbox, *[{"reset": "after"}] * 50)
    assert {execute(i, s1) for i in ids} == {Execution.DEAD}
    client = TestClient(create_app(s1))
    headers = {"Authorization": f"Bearer {key.secret}"}
    body = {"filter": {"states": ["dead"], "type": "payments.sandbox.charge"}, "limit": 100}
    # When a dry run counts them, then the replay runs on a real worker
    dry = client.post("/v1/jobs/replay", json={**body, "dry_run": True}, headers=headers)
    assert dry.status_code == 200 and dry.json()["matched"] == 50
    assert {load(s1, i).state for i in ids} == {"dead"}
    env = stack_env(s1.database_url, s1.broker_key_prefix, sandbox)
    with worker_process(env, logs_dir):
        done = client.post("/v1/jobs/replay", json=body, headers=headers)
        assert done.status_code == 200 and done.json()["replayed"] == 50
        _wait_terminal(s1, ids, "the 50 replayed charges to finish", 60)
    # Then each succeeded, its second request reused its key, and the PSP charged once
    stats = sandbox_stats(sandbox)
    for job_id in ids:
        job = load(s1, job_id)
        assert job.state == "succeeded" and job.replays == 1
        assert stats["keys_seen"][f"cv-{job_id}-charge"] == 2
        assert stats["effects"][f"cv-{job_id}-charge"] == 1
    # And the replay is audited: who, when, what
    with get_database(s1).session() as session:
        events = audit_events(session, key.tenant_id, 10)
    replays = [e for e in events if e.action == "jobs.replay"]
    assert len(replays) == 1
    assert replays[0].actor.startswith(f"api_key:{key.key_id}")
    assert len(replays[0].details["replayed"]) == 50
