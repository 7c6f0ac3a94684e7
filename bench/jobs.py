"""The bench-only job type (CONVEYOR_EXTRA_JOB_TYPES=bench.jobs:NOOP): succeeds at once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from integrations.base import JobContext, JobType, Outcome, Succeeded

NOOP_NAME = "bench.noop.run"
EXTRA_JOB_TYPES = "bench.jobs:NOOP"


class NoopPayload(BaseModel):
    """Nothing to carry."""

    model_config = ConfigDict(extra="forbid")


def noop(payload: NoopPayload, ctx: JobContext) -> Outcome:
    """Do nothing, so the figure is Conveyor's own cost per job."""
    return Succeeded({})


NOOP = JobType(
    name=NOOP_NAME,
    queue="data",
    payload_model=NoopPayload,
    handler=noop,
    description="Benchmark: a job that does nothing.",
)
