"""Nothing lost, nothing done twice: real workers killed, brokers restarted, messages doubled."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from store.db import get_database
from store.jobs import NewJob, submit_job
from store.keys import IssuedKey
from store.models import Attempt, Job
from store.states import TERMINAL_STATES
from store.types import utcnow
from tasks.publish import producer_app, publish
from tests.e2e.chaos import describe, run_chaos
from tests.e2e.invariants import assert_invariants
from tests.e2e.stack import (
    PrivateRedis,
    api_process,
    beat_process,
    stack_env,
    worker_process,
)
from tests.support.procs import wait_until
from tests.tasks.factories import CHARGE, RATES, load, make_job, sandbox_stats

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Small leases and sweeps so that crashes are recovered within seconds.
FAST_RECOVERY = {
    "lease_s": "3",
    "attempt_deadline_s": "2",
    "http_read_timeout_s": "1.5",
    "republish_after_s": "2",
    "visibility_timeout_s": "10",
    "max_deliveries": "10",
}


@pytest.fixture
def sqlite_settings(fresh_settings: Settings) -> Settings:
    """These tests run on the embedded default database, one file each."""
    return fresh_settings


def executions(job: Job) -> list[Attempt]:
    """The attempts that ran the job; `duplicate` rows are deliveries that found it taken."""
    return [a for a in job.attempt_rows if a.outcome != "duplicate"]


def _wait_terminal(settings: Settings, ids: list[uuid.UUID], what: str, timeout: float) -> None:
    wait_until(lambda: all(load(settings, i).state in TERMINAL_STATES for i in ids), what, timeout)


def test_killing_workers_repeatedly_loses_and_duplicates_nothing(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given 200 charges in flight on a prefork worker, with beat sweeping
    env = stack_env(
        sqlite_settings.database_url,
        sqlite_settings.broker_key_prefix,
        sandbox,
        **FAST_RECOVERY,
    )
    # When pool children and the worker itself are SIGKILLed 12 times
    result = run_chaos(
        sqlite_settings,
        env,
        key,
        sandbox,
        logs_dir,
        jobs=200,
        kills=12,
        with_beat=True,
        settle_s=120,
    )
    print(f"\nchaos (guarantees on): {describe(result)}")
    # Then every job reached exactly one terminal state and no key took two effects
    assert result.report.lost == [], describe(result)
    assert result.report.duplicated == {}, describe(result)
    assert result.report.orphan_effects == [] and result.report.problems == []
    assert result.child_kills >= 6 and result.main_kills >= 3


def test_negative_control_without_guarantees_the_same_kills_lose_jobs(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given the same stack with early acks and no sweeper (no beat)
    env = stack_env(
        sqlite_settings.database_url,
        sqlite_settings.broker_key_prefix,
        sandbox,
        unsafe_early_ack="true",
        **FAST_RECOVERY,
    )
    # When the same kills happen
    result = run_chaos(
        sqlite_settings,
        env,
        key,
        sandbox,
        logs_dir,
        jobs=120,
        kills=8,
        with_beat=False,
        settle_s=15,
    )
    print(f"\nchaos (guarantees off): {describe(result)}")
    # Then the test sees what was lost: the kill test is able to fail
    assert len(result.report.lost) + len(result.report.duplicated) >= 1, describe(result)


def test_jobs_queued_when_redis_restarts_without_persistence_all_complete(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given 30 jobs published to a private Redis with persistence off, and no worker yet
    broker = PrivateRedis(logs_dir)
    broker.start()
    try:
        s = sqlite_settings.model_copy(update={"broker_url": broker.url})
        app = producer_app(s)
        ids = []
        for _ in range(30):
            job_id = make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES)
            assert publish(app, job_id, "data.sandbox.fetch_rates", "data")
            ids.append(job_id)
        # When Redis crashes and comes back empty, and then a worker and beat start
        broker.crash()
        broker.start()
        env = stack_env(
            s.database_url, s.broker_key_prefix, sandbox, broker_url=broker.url, **FAST_RECOVERY
        )
        with beat_process(env, logs_dir), worker_process(env, logs_dir):
            _wait_terminal(s, ids, "every job lost with Redis to be re-published and run", 60)
    finally:
        broker.stop()
    # Then every job ran, exactly once
    report = assert_invariants(s, ids, sandbox)
    assert report.states == {"succeeded": 30}
    # (a slow pick-up may be republished once more; that copy shows as a `duplicate` row)
    assert all(len(executions(load(s, i))) == 1 for i in ids)


def test_the_same_message_delivered_to_two_workers_runs_once(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given two workers and a charge whose PSP call takes 300 ms
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 300}, timeout=5
    ).raise_for_status()
    s = sqlite_settings
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, **FAST_RECOVERY)
    job_id = make_job(s, key.tenant_id, "payments.sandbox.charge", CHARGE)
    with worker_process(env, logs_dir, "w1"), worker_process(env, logs_dir, "w2"):
        # When its id is published twice at once
        app = producer_app(s)
        assert publish(app, job_id, "payments.sandbox.charge", "payments")
        assert publish(app, job_id, "payments.sandbox.charge", "payments")
        wait_until(
            lambda: len(load(s, job_id).attempt_rows) == 2,
            "both deliveries to leave an attempt row",
            30,
        )
    # Then one delivery ran it, the other recorded a duplicate, and the PSP took one effect
    job = load(s, job_id)
    assert job.state == "succeeded" and job.attempts == 1
    assert sorted(a.outcome for a in job.attempt_rows) == ["duplicate", "succeeded"]
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{job_id}-charge": 1}
    assert_invariants(s, [job_id], sandbox)


def test_a_job_that_kills_its_worker_is_dead_after_max_deliveries_and_others_flow(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a job type that kills its process, and ordinary jobs beside it
    s = sqlite_settings
    env = stack_env(
        s.database_url,
        s.broker_key_prefix,
        sandbox,
        extra_job_types="tests.e2e.doubles:CRASH",
        **{**FAST_RECOVERY, "max_deliveries": "3"},
    )
    poison = make_job_unchecked(s, key, "diagnostics.test.crash", "data")
    ordinary = [make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES) for _ in range(10)]
    with (
        beat_process(env, logs_dir),
        worker_process(env, logs_dir, "poison", ("--pool=prefork", "--concurrency=2")),
    ):
        app = producer_app(s)
        publish(app, poison, "diagnostics.test.crash", "data")
        for job_id in ordinary:
            publish(app, job_id, "data.sandbox.fetch_rates", "data")
        # When the poison job is delivered until the cap
        _wait_terminal(s, [poison, *ordinary], "the poison job to be capped, others done", 90)
    # Then it is dead for worker_lost after 3 deliveries, and every other job succeeded
    job = load(s, poison)
    assert job.state == "dead" and job.error is not None and job.error["code"] == "worker_lost"
    assert job.deliveries == 3
    assert [a.outcome for a in job.attempt_rows if a.outcome != "duplicate"] == ["lost"] * 3
    assert {load(s, i).state for i in ordinary} == {"succeeded"}


def make_job_unchecked(s: Settings, key: IssuedKey, job_type: str, queue: str) -> uuid.UUID:
    """A job of a type only the worker process knows (registered through its environment)."""
    job, _ = submit_job(
        get_database(s),
        NewJob(
            tenant_id=key.tenant_id,
            type=job_type,
            queue=queue,
            payload={},
            request_hash="0" * 64,
            max_attempts=5,
        ),
    )
    return job.id


def test_delays_longer_than_the_visibility_timeout_run_once_at_their_time(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a visibility timeout of 10 s, a job scheduled 12 s ahead, and a job whose
    # provider answers 429 with Retry-After: 11 once
    s = sqlite_settings
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, **FAST_RECOVERY)
    run_at = utcnow() + timedelta(seconds=12)
    scheduled, _ = submit_job(
        get_database(s),
        NewJob(
            tenant_id=key.tenant_id,
            type="data.sandbox.fetch_rates",
            queue="data",
            payload=RATES,
            request_hash="1" * 64,
            max_attempts=3,
            run_at=run_at,
        ),
    )
    requests.post(
        f"{sandbox}/_sandbox/faults",
        json={"script": [{"status": 429, "retry_after": 11}]},
        timeout=5,
    ).raise_for_status()
    throttled = make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES)
    with beat_process(env, logs_dir), worker_process(env, logs_dir):
        publish(producer_app(s), throttled, "data.sandbox.fetch_rates", "data")
        # When both wait past the visibility timeout
        _wait_terminal(s, [scheduled.id, throttled], "both delayed jobs to finish", 60)
        time.sleep(1)  # a stray redelivery would show as an extra attempt row by now
    # Then the scheduled job ran once, not before its time
    job = load(s, scheduled.id)
    assert job.state == "succeeded" and [a.outcome for a in executions(job)] == ["succeeded"]
    assert executions(job)[0].started_at >= run_at
    # And the throttled job ran twice, the second time at least 11 s after the first
    first, second = executions(load(s, throttled))
    assert (first.outcome, second.outcome) == ("retry", "succeeded")
    assert second.started_at >= first.finished_at + timedelta(seconds=11)
    assert sandbox_stats(sandbox)["by_path"]["/v1/rates"] == 3


@pytest.mark.parametrize("fault", ["down", "hanging"])
def test_submit_with_the_broker_unavailable_answers_fast_and_the_job_runs_later(
    fault: str, sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given an API whose broker is down (nothing listening) or hanging (accepts, never answers)
    broker = PrivateRedis(logs_dir)
    hang = _HangingServer(broker.port) if fault == "hanging" else None
    s = sqlite_settings.model_copy(update={"broker_url": broker.url})
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, broker_url=broker.url)
    headers = {"Authorization": f"Bearer {key.secret}"}
    try:
        with api_process(env, logs_dir) as api:
            # When three jobs are submitted
            answers: list[tuple[int, float]] = []
            ids: list[uuid.UUID] = []
            for _ in range(3):
                began = time.monotonic()
                response = requests.post(
                    f"{api}/v1/jobs",
                    json={"type": "data.sandbox.fetch_rates", "payload": RATES},
                    headers=headers,
                    timeout=10,
                )
                answers.append((response.status_code, time.monotonic() - began))
                if response.status_code == 202:
                    ids.append(uuid.UUID(response.json()["id"]))
        # Then each answered 202 within 2 s with the job committed
        assert all(code == 202 and took < 2.0 for code, took in answers), answers
        assert {load(s, i).state for i in ids} == {"queued"}
        # And once the broker is back, beat's sweeper publishes them and they run
        if hang is not None:
            hang.close()
        broker.start()
        env = stack_env(
            s.database_url, s.broker_key_prefix, sandbox, broker_url=broker.url, **FAST_RECOVERY
        )
        with beat_process(env, logs_dir), worker_process(env, logs_dir):
            _wait_terminal(s, ids, "the jobs accepted while the broker was away to run", 60)
    finally:
        if hang is not None:
            hang.close()
        broker.stop()
    assert_invariants(s, ids, sandbox)
    assert {load(s, i).state for i in ids} == {"succeeded"}


class _HangingServer:
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)

    def close(self) -> None:
        self.sock.close()


def test_sigterm_lets_the_running_job_finish_before_the_worker_exits(
    sqlite_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a worker running a job whose provider takes 0.8 s (well inside the 1.5 s read timeout)
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 800}, timeout=5
    ).raise_for_status()
    s = sqlite_settings
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, **FAST_RECOVERY)
    job_id = make_job(s, key.tenant_id, "payments.sandbox.charge", CHARGE)
    with worker_process(env, logs_dir, "graceful") as worker:
        publish(producer_app(s), job_id, "payments.sandbox.charge", "payments")
        wait_until(lambda: load(s, job_id).state == "running", "the worker to claim the job")
        # When the worker is sent SIGTERM
        began = time.monotonic()
        worker.popen.terminate()
        worker.popen.wait(timeout=15)
        took = time.monotonic() - began
    # Then it finished the job first, and exited within the attempt deadline's bound
    job = load(s, job_id)
    assert job.state == "succeeded", job.state
    assert took < 10, took
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{job_id}-charge": 1}
