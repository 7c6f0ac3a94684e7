"""A job the guard defers (breaker open, over a rate limit) is counted per provider and cause."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from config.settings import Settings
from integrations.guard import get_guard
from store.keys import IssuedKey
from tasks.executor import execute
from tests.tasks.factories import RATES, load, make_job

RATES_TYPE = "data.sandbox.fetch_rates"


def deferrals(cause: str) -> float:
    """The deferral counter of the sandbox provider for one cause."""
    labels = {"provider": "sandbox", "cause": cause}
    return REGISTRY.get_sample_value("conveyor_provider_deferrals_total", labels) or 0.0


def test_rate_limit_and_breaker_deferrals_are_counted_by_cause(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the sandbox provider limited to one call a minute, a call that used it up
    limited = settings.model_copy(update={"rate_limits": "sandbox=1/60"})
    get_guard(limited).admit("sandbox", uuid.uuid4())
    before = deferrals("rate_limit"), deferrals("breaker_open")
    # When a worker runs a sandbox job, and another once the breaker is open
    limited_job = make_job(limited, tenant_key.tenant_id, RATES_TYPE, RATES)
    execute(limited_job, limited)
    get_guard(settings).breaker("sandbox").trip()
    broken_job = make_job(settings, tenant_key.tenant_id, RATES_TYPE, RATES)
    execute(broken_job, settings)
    # Then each was deferred without spending an attempt, and counted under its cause
    for job_id in (limited_job, broken_job):
        job = load(settings, job_id)
        assert (job.state, job.attempts) == ("retrying", 0)
    assert deferrals("rate_limit") - before[0] == 1
    assert deferrals("breaker_open") - before[1] == 1
