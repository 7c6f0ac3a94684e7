"""The explicit list of job types Conveyor runs; add a new one here and nowhere else."""

from __future__ import annotations

from typing import Any

from integrations.base import JobType
from integrations.data.sandbox import FETCH_RATES
from integrations.payments.sandbox import CHARGE

JOB_TYPES: dict[str, JobType[Any]] = {jt.name: jt for jt in (FETCH_RATES, CHARGE)}


def get_job_type(name: str) -> JobType[Any] | None:
    """The job type registered under `name`, if any."""
    return JOB_TYPES.get(name)
