"""The explicit list of job types Conveyor runs; add a new one here and nowhere else."""

from __future__ import annotations

import importlib
from typing import Any

from config.settings import get_settings
from integrations.base import JobType
from integrations.data.providers import data_job_types
from integrations.data.sandbox import FETCH_RATES
from integrations.payments.jobs import payment_job_types
from integrations.payments.sandbox import CHARGE

BUILTIN: tuple[JobType[Any], ...] = (
    FETCH_RATES,
    CHARGE,
    *payment_job_types(),
    *data_job_types(),
)


def load_extra(spec: str) -> list[JobType[Any]]:
    """Job types named as `module:ATTR,…` (CONVEYOR_EXTRA_JOB_TYPES), e.g. for test doubles."""
    found: list[JobType[Any]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        module_name, _, attr = item.partition(":")
        job_type = getattr(importlib.import_module(module_name), attr)
        if not isinstance(job_type, JobType):
            raise TypeError(f"{item} is not a JobType")
        found.append(job_type)
    return found


JOB_TYPES: dict[str, JobType[Any]] = {
    jt.name: jt for jt in (*BUILTIN, *load_extra(get_settings().extra_job_types))
}


def get_job_type(name: str) -> JobType[Any] | None:
    """The job type registered under `name`, if any."""
    return JOB_TYPES.get(name)
