"""`conveyor jobs|queues|providers|audit`: the console's chores from a shell, audited."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job
from tests.api.ops_world import outage_killed_charges
from tests.support.broker import queued_job_ids
from tests.support.procs import ROOT


def conveyor(settings: Settings, *args: str) -> str:
    """Run `conveyor …` on the test's database and broker prefix; its stdout (exit 0 asserted)."""
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": settings.database_url,
        "CONVEYOR_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "CONVEYOR_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_on_call_finds_and_replays_dead_charges_from_the_shell(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given five charges an outage killed
    ids = outage_killed_charges(settings, tenant_key.tenant_id, 5)
    # When on-call looks at the queues, lists the dead, and dry-runs a replay
    queues = conveyor(settings, "queues")
    listed = conveyor(settings, "jobs", "list", "--state", "dead", "--provider", "sandbox")
    shown = conveyor(settings, "jobs", "show", str(ids[0]))
    dry = conveyor(settings, "jobs", "replay", "--state", "dead", "--provider", "sandbox")
    # Then they see five, why, and nothing changed yet
    assert "dead or needs_review: 5" in queues
    assert sorted(line.split()[0] for line in listed.splitlines()) == sorted(map(str, ids))
    assert "503 Service Unavailable" in shown and "4242424242424242" not in shown
    assert "dry run: 5 job(s)" in dry
    assert _states(settings, tenant_key) == {"dead"}
    # When they replay for real
    done = conveyor(settings, "jobs", "replay", "--state", "dead", "--provider", "sandbox", "--yes")
    audit = conveyor(settings, "audit")
    providers = conveyor(settings, "providers")
    # Then the five are queued and published, the action is audited, and breakers are listed
    assert "replayed 5 of 5" in done
    assert _states(settings, tenant_key) == {"queued"}
    assert set(queued_job_ids(settings, "payments")) >= set(map(str, ids))
    assert "ops.replay" in audit and "cli:" in audit
    assert "sandbox" in providers and "closed" in providers


def _states(settings: Settings, key: IssuedKey) -> set[str]:
    """The states of this tenant's jobs (the worker's database may hold other tests' rows)."""
    with get_database(settings).session() as session:
        return set(session.scalars(select(Job.state).where(Job.tenant_id == key.tenant_id)))
