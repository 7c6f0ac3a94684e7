"""Small factories for task tests: settings pointing at the sandbox, jobs in the DB."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import requests
from sqlalchemy import update

from config.settings import Settings
from integrations.base import RetryPolicy
from integrations.registry import get_job_type
from store.db import get_database
from store.jobs import NewJob, get_job, submit_job
from store.models import Job
from store.types import utcnow
from tasks.policy import effective_policy


def with_sandbox(settings: Settings, sandbox_url: str, **overrides: Any) -> Settings:
    """The test's settings aimed at the sandbox, with short timeouts and small backoff."""
    values = {
        "sandbox_url": sandbox_url,
        "stripe_base_url": sandbox_url,
        "adyen_base_url": f"{sandbox_url}/adyen",
        "http_read_timeout_s": 2.0,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 1.0,
        **overrides,
    }
    return settings.model_copy(update=values)


def make_job(
    settings: Settings,
    tenant_id: uuid.UUID,
    job_type: str,
    payload: dict[str, Any],
    max_attempts: int = 3,
) -> uuid.UUID:
    """Commit a queued job the way the API would, returning its id."""
    jt = get_job_type(job_type)
    assert jt is not None
    policy = effective_policy(settings, jt.retry, RetryPolicy(max_attempts=max_attempts))
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    job, _ = submit_job(
        get_database(settings),
        NewJob(
            tenant_id=tenant_id,
            type=job_type,
            queue=jt.queue,
            payload=payload,
            request_hash=digest,
            max_attempts=policy.max_attempts,
            retry_policy=policy.as_dict(),
        ),
    )
    return job.id


def load(settings: Settings, job_id: uuid.UUID) -> Job:
    """The job row with its attempts."""
    with get_database(settings).session() as session:
        job = get_job(session, job_id)
        assert job is not None
        return job


def make_due(settings: Settings, job_id: uuid.UUID) -> None:
    """Pull a waiting job's next attempt to now, instead of sleeping through its backoff."""
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=utcnow()))


def script_faults(sandbox_url: str, *faults: dict[str, Any]) -> None:
    """Make the sandbox answer its next requests with these faults, in order."""
    response = requests.post(
        f"{sandbox_url}/_sandbox/faults", json={"script": list(faults)}, timeout=5
    )
    response.raise_for_status()


def sandbox_stats(sandbox_url: str) -> dict[str, Any]:
    """Requests and effects the sandbox has counted."""
    stats: dict[str, Any] = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=5).json()
    return stats


CHARGE = {"amount": 1250, "currency": "eur", "payment_method": "pm_card_visa"}
RATES = {"base": "EUR", "symbols": ["USD"]}
