"""Job types that only tests register (CONVEYOR_EXTRA_JOB_TYPES): a job that kills its process."""

from __future__ import annotations

import os

from pydantic import BaseModel

from integrations.base import JobContext, JobType, Outcome

CRASH_EXIT_CODE = 137


class CrashPayload(BaseModel):
    """Nothing to say; the job only crashes."""

    note: str = ""


def crash(payload: CrashPayload, ctx: JobContext) -> Outcome:
    """Kill the process running this job, as a segfault or the OOM killer would."""
    os._exit(CRASH_EXIT_CODE)


CRASH = JobType(
    name="diagnostics.test.crash",
    queue="data",
    payload_model=CrashPayload,
    handler=crash,
    description="Test double: kills its worker process.",
)
