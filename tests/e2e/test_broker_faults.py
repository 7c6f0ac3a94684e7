"""Workers survive what the broker hands them (malformed messages) and what it does (restarts)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from store.keys import IssuedKey
from store.states import JobState
from tasks.publish import producer_app, publish
from tests.e2e.stack import stack_env, worker_process
from tests.support.procs import wait_until
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
    assert len(dropped) == len(MALFORMED), log[-3000:]
    assert all("queue=data" in line for line in dropped)
    assert "Unrecoverable error" not in log
    assert client.llen(queue) == 0
