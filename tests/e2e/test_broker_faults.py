"""Workers survive what the broker hands them (malformed messages) and what it does (restarts)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from config.settings import Settings
from store.keys import IssuedKey
from store.states import JobState
from tasks.publish import producer_app, publish
from tests.e2e.stack import (
    PrivateRedis,
    api_process,
    beat_process,
    stack_env,
    start_worker,
    worker_process,
)
from tests.support.procs import Proc, wait_until
from tests.support.proxy import Proxy
from tests.tasks.factories import RATES, load, make_job

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RATES_TASK = "data.sandbox.fetch_rates"


def _envelope(body: bytes, headers: dict[str, object]) -> bytes:
    """A kombu envelope as a producer would write it, around any body."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": "data"},
                "priority": 0,
            },
        }
    ).encode()


# Items no kombu producer writes, each of which stopped the worker before.
MALFORMED = [
    b"garbage",
    b"[1]",
    b'{"a": 1}',
    b'{"properties": {}}',
    b'"just a string"',
    b"\xff\xfe not utf-8",
]
# Well-formed task envelopes whose body Celery's strategy unpacks and crashed on, every restart.
TASK_BODIES_OF_ANOTHER_SHAPE = [b'{"a": 1}', b"[1]", b'[["x"], {}]']


def test_malformed_messages_are_dropped_and_the_worker_keeps_consuming(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    s = fresh_settings
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox)
    client = redis.Redis.from_url(s.broker_url)
    queue = f"{s.broker_key_prefix}data"
    with worker_process(env, logs_dir, "malformed") as worker:
        # Given a consuming worker, When its queue receives items that are not kombu messages,
        # a well-formed one whose body is not JSON, one for a task nobody registered and one
        # whose argument is not a job id
        for item in MALFORMED:
            client.lpush(queue, item)
        client.lpush(queue, _envelope(b"{not json", {"task": RATES_TASK, "id": "x1"}))
        # and task messages whose JSON body is not Celery's [args, kwargs, embed]
        for body in TASK_BODIES_OF_ANOTHER_SHAPE:
            client.lpush(queue, _envelope(body, {"task": RATES_TASK, "id": "x2"}))
        inline = json.loads(_envelope(b"", {"task": RATES_TASK, "id": "x3"}))
        client.lpush(queue, json.dumps({**inline, "body": {"a": 1}, "properties": {}}))
        producer_app(s).send_task("no.such.task", args=["x"], queue="data")
        producer_app(s).send_task(RATES_TASK, args=["not-a-uuid"], queue="data")
        # And then a normal job is submitted
        job_id = make_job(s, key.tenant_id, RATES_TASK, RATES)
        assert publish(producer_app(s), job_id, RATES_TASK, "data")
        # Then the job succeeds on the same worker process, which never exited
        wait_until(
            lambda: load(s, job_id).state == JobState.SUCCEEDED,
            "the job behind the malformed messages to succeed",
            timeout=30,
            watch=[worker],
        )
        worker.check_alive()
        log = worker.log()
    client.close()
    # And each malformed item was dropped and logged with its queue
    dropped = [line for line in log.splitlines() if "broker.message_dropped" in line]
    assert len(dropped) == len(MALFORMED) + len(TASK_BODIES_OF_ANOTHER_SHAPE) + 1, log[-3000:]
    assert all("queue=data" in line for line in dropped)
    assert "Unrecoverable error" not in log
    assert client.llen(queue) == 0
    # And the worker, stopped by SIGTERM, exited 0 (a stop nobody asked for would not)
    assert worker.popen.returncode == 0


BROKER_KILLS = 3
WORKERS = 2
ONE_SLOT = ("--concurrency=1",)
RECOVERY_WITHIN_S = 15.0


def test_every_worker_consumes_after_the_broker_is_killed_three_times(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given two worker processes on a broker of this test's own, consuming
    broker = PrivateRedis(logs_dir)
    broker.start()
    s = fresh_settings.model_copy(update={"broker_url": broker.url})
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox, broker_url=broker.url)
    workers = [start_worker(env, logs_dir, f"restarts{n}", ONE_SLOT) for n in range(WORKERS)]
    try:
        _one_job_through(s, key, workers, "before the broker restarts")
        requests.post(
            f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 400}, timeout=5
        ).raise_for_status()
        # When the broker is killed and restarted three times while jobs are in flight
        for kill in range(BROKER_KILLS):
            in_flight = [_publish_job(s, key) for _ in range(WORKERS * 2)]
            time.sleep(0.2)
            broker.crash()
            time.sleep(1.0)
            broker.start()
            time.sleep(0.5)
            # Then, after each restart, every worker process is still there
            for worker in workers:
                worker.check_alive()
            _one_job_through(s, key, workers, f"after broker restart {kill + 1}")
            del in_flight  # lost with the broker's memory; the sweeper's concern, not this test's
        # And every worker process consumes: jobs that each hold a one-slot worker for a while
        # are taken by both
        ids = [_publish_job(s, key) for _ in range(8)]
        wait_until(
            lambda: all(load(s, i).state == JobState.SUCCEEDED for i in ids),
            "eight jobs after the restarts to succeed",
            timeout=40,
            watch=workers,
        )
        pids = {a.worker.split(":")[1] for i in ids for a in load(s, i).attempt_rows}
        assert pids == {str(worker.pid) for worker in workers}
    finally:
        for worker in workers:
            worker.stop()
        broker.stop()


def _publish_job(s: Settings, key: IssuedKey) -> uuid.UUID:
    job_id = make_job(s, key.tenant_id, RATES_TASK, RATES)
    deadline = time.monotonic() + 20
    while not publish(producer_app(s), job_id, RATES_TASK, "data"):
        assert time.monotonic() < deadline, "the broker did not take a publish"
        time.sleep(0.2)
    return job_id


def _one_job_through(s: Settings, key: IssuedKey, workers: list[Proc], what: str) -> None:
    job_id = _publish_job(s, key)
    wait_until(
        lambda: load(s, job_id).state == JobState.SUCCEEDED,
        f"a job to succeed {what}",
        timeout=30,
        watch=workers,
    )


@pytest.mark.parametrize("fault", ["blackhole", "refuse"])
def test_a_running_stack_rides_out_a_broker_partition_or_reset(
    fault: str, fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given API, worker and beat whose every Redis connection goes through the test's proxy
    with Proxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        s = fresh_settings.model_copy(update={"broker_url": url})
        env = stack_env(
            s.database_url, s.broker_key_prefix, sandbox, broker_url=url, republish_after_s="2"
        )
        headers = {"Authorization": f"Bearer {key.secret}"}

        def submit() -> tuple[int, float, str]:
            began = time.monotonic()
            response = requests.post(
                f"{api}/v1/jobs",
                json={"type": RATES_TASK, "payload": RATES},
                headers=headers,
                timeout=15,
            )
            job = response.json().get("id", "") if response.status_code == 202 else ""
            return response.status_code, time.monotonic() - began, job

        with (
            api_process(env, logs_dir) as api,
            beat_process(env, logs_dir),
            worker_process(env, logs_dir, f"proxied-{fault}") as worker,
        ):
            assert submit()[0] == 202
            # When the broker is partitioned away (or resets every connection) for 4 s
            getattr(proxy, fault)()
            during = [submit() for _ in range(3)]
            ready = requests.get(f"{api}/readyz", timeout=15)
            time.sleep(4)
            proxy.heal()
            healed = time.monotonic()
            after = submit()
            # Then submits during the fault were accepted quickly (the sweeper publishes them)
            assert all(code == 202 and took < 3.0 for code, took, _ in during), during
            assert ready.status_code == 503
            # And every job, during and after, succeeds on the same worker, which never exited
            ids = [uuid.UUID(job) for _, _, job in [*during, after]]
            done = wait_until(
                lambda: all(load(s, i).state == JobState.SUCCEEDED for i in ids),
                "the jobs submitted during and after the broker fault to succeed",
                timeout=60,
                watch=[worker],
            )
        print(f"{fault}: jobs done {done - healed:.1f}s after the broker came back")
        # And they ran within seconds of the broker's return (Celery's reconnect backoff, a
        # sweep), not after a maintenance lock left behind by the fault had expired
        assert done - healed < RECOVERY_WITHIN_S
