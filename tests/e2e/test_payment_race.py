"""Two workers racing one payment job: one execution, one effect at the PSP."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.payments import ledger_for_job
from tasks.publish import producer_app, publish
from tests.e2e.stack import stack_env, worker_process
from tests.support.procs import wait_until
from tests.tasks.factories import load, make_job, sandbox_stats, with_sandbox

pytestmark = [pytest.mark.e2e]
TOKENS = {"stripe": "pm_card_visa", "adyen": "stored_card_visa"}


@pytest.fixture
def s(fresh_settings: Settings, sandbox: str) -> Settings:
    """A fresh database and prefix, with both payment providers on the sandbox."""
    return with_sandbox(fresh_settings, sandbox)


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
def test_two_workers_racing_one_charge_make_one_effect(
    provider: str, s: Settings, sandbox: str, logs_dir: Path
) -> None:
    # Given two workers and a charge whose PSP call takes 300 ms
    with get_database(s).session() as session:
        key: IssuedKey = create_api_key(session, "race")
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 300}, timeout=5
    ).raise_for_status()
    payload = {"amount": 4200, "currency": "eur", "payment_method": TOKENS[provider]}
    job_id = make_job(s, key.tenant_id, f"payments.{provider}.charge", payload)
    env = stack_env(s.database_url, s.broker_key_prefix, sandbox)
    with worker_process(env, logs_dir, "race1"), worker_process(env, logs_dir, "race2"):
        # When its id is published twice at once, so each worker gets a copy
        app = producer_app(s)
        for _ in range(2):
            assert publish(app, job_id, f"payments.{provider}.charge", "payments")
        wait_until(lambda: len(load(s, job_id).attempt_rows) == 2, "both copies to be handled", 30)
    # Then one copy charged and the other found the job taken; one effect, one ledger row
    job = load(s, job_id)
    assert job.state == "succeeded"
    assert sorted(a.outcome for a in job.attempt_rows) == ["duplicate", "succeeded"]
    stats = sandbox_stats(sandbox)
    print(f"\n{provider} race: keys_seen={stats['keys_seen']} effects={stats['effects']}")
    assert stats["effects"] == {f"cv-{job_id}-charge": 1}
    with get_database(s).session() as session:
        assert len(ledger_for_job(session, job_id)) == 1
