"""A provider outage opens the breaker; after it, the probe closes it and jobs flow at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
import requests

from config.settings import Settings
from store.keys import IssuedKey
from store.states import JobState
from tasks.publish import producer_app, publish
from tests.e2e.stack import beat_process, stack_env, worker_process
from tests.support.procs import wait_until
from tests.tasks.factories import RATES, load, make_job

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OPEN_S = 3.0
OUTAGE_S = 5.0
JOBS = 12
# Jobs finish within one open interval of the provider's recovery, plus beat's poll and a probe.
FLOW_WITHIN_S = OPEN_S + 1.5


def test_jobs_flow_again_within_one_open_interval_after_an_outage(
    fresh_settings: Settings, key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    s = fresh_settings
    env = stack_env(
        s.database_url,
        s.broker_key_prefix,
        sandbox,
        breaker_open_s=str(OPEN_S),
        breaker_failure_threshold="3",
        attempt_deadline_s="20",
        lease_s="30",
    )
    with beat_process(env, logs_dir), worker_process(env, logs_dir, "breaker") as worker:
        # Given a provider outage, and jobs submitted into it (allowed many attempts)
        requests.post(
            f"{sandbox}/_sandbox/faults",
            json={"script": [], "outage": {"status": 503, "seconds": OUTAGE_S}},
            timeout=5,
        ).raise_for_status()
        ids = [
            make_job(s, key.tenant_id, "data.sandbox.fetch_rates", RATES, 25) for _ in range(JOBS)
        ]
        for job_id in ids:
            assert publish(producer_app(s), job_id, "data.sandbox.fetch_rates", "data")
        # When the outage ends
        remaining = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json()[
            "outage_remaining_s"
        ]
        time.sleep(remaining)
        recovered = time.monotonic()
        # Then every job has succeeded within one open interval (plus polling)
        done = wait_until(
            lambda: all(load(s, i).state == JobState.SUCCEEDED for i in ids),
            "every job to succeed after the outage",
            timeout=60,
            watch=[worker],
        )
        log = worker.log()
    flow_s = done - recovered
    print(f"jobs flowed {flow_s:.1f}s after the provider recovered (open interval {OPEN_S}s)")
    assert flow_s <= FLOW_WITHIN_S
    # And the breaker opened, then closed, and says so; it is closed in Redis for everyone
    assert "state=open" in log and "state=closed" in log
    client = redis.Redis.from_url(s.broker_url)
    prefix = f"{s.broker_key_prefix}conveyor:breaker:sandbox"
    assert not client.exists(f"{prefix}:open") and not client.exists(f"{prefix}:half")
    client.close()
