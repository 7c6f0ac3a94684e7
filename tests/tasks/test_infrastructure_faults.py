"""A live worker whose database goes away for a moment is not a lost worker.

Real PostgreSQL behind the test's own TCP proxy (tests/support/proxy.py), the real sandbox.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.engine import make_url

from config.settings import Settings
from store.db import get_database, reset_database
from store.keys import IssuedKey, create_api_key
from store.states import AttemptOutcome, JobState
from tasks.executor import Execution, execute
from tests.conftest import make_settings
from tests.support.proxy import Proxy
from tests.tasks.factories import CHARGE, load, make_job, sandbox_stats, with_sandbox

PSP_LATENCY_MS = 1500


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """The TCP proxy in front of PostgreSQL."""
    with Proxy("127.0.0.1", 5432) as p:
        yield p


@pytest.fixture
def through(
    postgres_url: str, broker_prefix: str, proxy: Proxy, sandbox: str
) -> Iterator[Settings]:
    """Settings whose database connections pass through the proxy."""
    url = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    s = with_sandbox(make_settings(url, f"{broker_prefix}{uuid.uuid4().hex[:6]}:"), sandbox)
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": PSP_LATENCY_MS}, timeout=5
    ).raise_for_status()
    yield s
    reset_database()


def test_a_database_outage_while_the_provider_answers_is_waited_out_not_recorded_as_lost(
    through: Settings, proxy: Proxy, sandbox: str
) -> None:
    # Given a charge whose provider takes 1.5 s to answer
    with get_database(through).session() as session:
        key: IssuedKey = create_api_key(session, f"t-{uuid.uuid4().hex[:8]}")
    job_id = make_job(through, key.tenant_id, "payments.sandbox.charge", CHARGE)
    outcome: list[Execution] = []
    worker = threading.Thread(target=lambda: outcome.append(execute(job_id, through)))

    # When the database refuses every connection while the provider is answering, and comes
    # back a second later
    worker.start()
    threading.Event().wait(0.5)
    proxy.refuse()
    threading.Event().wait(1.8)
    proxy.heal()
    worker.join(timeout=30)

    # Then the worker wrote the attempt's end once the database was back: one charge, the job
    # succeeded, its one delivery counted once, and no attempt says the worker was lost
    assert outcome == [Execution.SUCCEEDED]
    job = load(through, job_id)
    assert job.state == JobState.SUCCEEDED.value and job.deliveries == 1
    assert [a.outcome for a in job.attempt_rows] == [AttemptOutcome.SUCCEEDED.value]
    assert sandbox_stats(sandbox)["effects"] == {f"cv-{job_id}-charge": 1}
