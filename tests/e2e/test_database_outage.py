"""PostgreSQL partitioned, refusing or terminating connections: every round trip is bounded.

The API, a worker and the test's own TCP proxy in front of PostgreSQL (tests/support/proxy.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import Job
from tests.conftest import make_settings
from tests.e2e.stack import api_process, stack_env, worker_process
from tests.support.procs import wait_until
from tests.support.proxy import Proxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RATES_JOB = {"type": "data.sandbox.fetch_rates", "payload": {"base": "EUR", "symbols": ["USD"]}}
# Defaults: 3 s statement timeout + 1 s margin per round trip, 1 s ping, 2 s connect.
ANSWER_WITHIN_S = 6.0
READY_WITHIN_S = 1.5
STUCK_CLIENTS = 24


@pytest.fixture
def direct(postgres_url: str, broker_prefix: str) -> Iterator[Settings]:
    """Settings reaching PostgreSQL directly: what the test reads and writes behind the proxy."""
    s = make_settings(postgres_url, f"{broker_prefix}{uuid.uuid4().hex[:6]}:")
    yield s


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """The TCP proxy in front of PostgreSQL."""
    with Proxy("127.0.0.1", 5432) as p:
        yield p


def _through(direct: Settings, proxy: Proxy) -> str:
    url = make_url(direct.database_url).set(port=proxy.port)
    return url.render_as_string(hide_password=False)


def _tenant_jobs(direct: Settings, key: IssuedKey) -> int:
    with get_database(direct).session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Job).where(Job.tenant_id == key.tenant_id)
            )
            or 0
        )


def _submit(api: str, key: IssuedKey) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        f"{api}/v1/jobs",
        json=RATES_JOB,
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=30,
    )
    return response, time.monotonic() - started


def _ready(api: str) -> tuple[int, float]:
    started = time.monotonic()
    status = requests.get(f"{api}/readyz", timeout=30).status_code
    return status, time.monotonic() - started


def test_a_partitioned_database_answers_503_in_bounded_time_and_recovers(
    direct: Settings, proxy: Proxy, sandbox: str, logs_dir: Path
) -> None:
    with get_database(direct).session() as session:
        key = create_api_key(session, f"outage-{uuid.uuid4().hex[:8]}")
    env = stack_env(_through(direct, proxy), direct.broker_key_prefix, sandbox)
    with api_process(env, logs_dir) as api, worker_process(env, logs_dir, "pg-outage") as worker:
        # Given a stack that works through the proxy
        assert _submit(api, key)[0].status_code == 202
        before = _tenant_jobs(direct, key)
        # When the network to PostgreSQL drops every packet
        proxy.blackhole()
        # Then a submit answers 503 database_unavailable with Retry-After, within the bound
        response, took = _submit(api, key)
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert took < ANSWER_WITHIN_S
        # And with many clients stuck on the dead database, /readyz still answers 503 at once
        with ThreadPoolExecutor(max_workers=STUCK_CLIENTS) as pool:
            stuck = [pool.submit(_submit, api, key) for _ in range(STUCK_CLIENTS)]
            time.sleep(0.5)
            status, ready_took = _ready(api)
            answers = [f.result() for f in stuck]
        assert status == 503 and ready_took < READY_WITHIN_S
        assert {r.status_code for r, _ in answers} == {503}
        assert max(t for _, t in answers) < 2 * ANSWER_WITHIN_S
        # And nothing was written
        proxy.heal()
        assert _tenant_jobs(direct, key) == before
        # When the network heals, Then submits and readiness recover without a restart
        wait_until(lambda: _ready(api)[0] == 200, "the API to be ready again", timeout=15)
        response, _ = _submit(api, key)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        # And the worker, which lived through it, runs the new job
        wait_until(
            lambda: (
                requests.get(
                    f"{api}/v1/jobs/{job_id}",
                    headers={"Authorization": f"Bearer {key.secret}"},
                    timeout=5,
                ).json()["state"]
                == "succeeded"
            ),
            "the job submitted after the outage to succeed",
            timeout=30,
            watch=[worker],
        )
        api_log = (logs_dir / "api.log").read_text(errors="replace")
    assert "Traceback" not in api_log


def test_refused_connections_answer_retryable_503_with_one_log_line_each(
    direct: Settings, proxy: Proxy, sandbox: str, logs_dir: Path
) -> None:
    with get_database(direct).session() as session:
        key = create_api_key(session, f"refused-{uuid.uuid4().hex[:8]}")
    env = stack_env(_through(direct, proxy), direct.broker_key_prefix, sandbox)
    with api_process(env, logs_dir) as api:
        assert _submit(api, key)[0].status_code == 202
        before = _tenant_jobs(direct, key)
        # When PostgreSQL resets the pooled connections and refuses new ones
        proxy.refuse()
        results = [_submit(api, key) for _ in range(10)]
        proxy.heal()
        # Then every submit is a quick, retryable 503 and nothing was written
        assert [r.status_code for r, _ in results] == [503] * 10
        assert all("Retry-After" in r.headers for r, _ in results)
        assert max(t for _, t in results) < ANSWER_WITHIN_S
        assert _tenant_jobs(direct, key) == before
        # And after it is back, the very next submit succeeds
        assert _submit(api, key)[0].status_code == 202
        api_log = (logs_dir / "api.log").read_text(errors="replace")
    # And the log holds one line per failed request, no traceback
    assert api_log.count("api.database_unavailable") == 10
    assert "Traceback" not in api_log


def test_a_slow_network_to_the_database_is_cut_at_the_round_trip_bound(
    direct: Settings, proxy: Proxy, sandbox: str, logs_dir: Path
) -> None:
    with get_database(direct).session() as session:
        key = create_api_key(session, f"slow-{uuid.uuid4().hex[:8]}")
    env = stack_env(_through(direct, proxy), direct.broker_key_prefix, sandbox)
    with api_process(env, logs_dir) as api:
        assert _submit(api, key)[0].status_code == 202
        # When every packet to and from PostgreSQL is 150 ms late, Then submits still succeed
        proxy.delay(150)
        response, took = _submit(api, key)
        assert response.status_code == 202 and took < ANSWER_WITHIN_S
        # When every packet is 6 s late (beyond the 4 s round-trip bound)
        before = _tenant_jobs(direct, key)
        proxy.delay(6000)
        response, took = _submit(api, key)
        # Then the submit is cut at the bound with a 503, and nothing was written
        assert response.status_code == 503, response.text
        assert took < ANSWER_WITHIN_S + 1
        proxy.heal()
        time.sleep(7)  # let the late packets drain
        assert _tenant_jobs(direct, key) == before
