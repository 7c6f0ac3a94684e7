"""A job's states and which of them are terminal."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life (DESIGN §3)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"


TERMINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.DEAD,
        JobState.CANCELLED,
        JobState.NEEDS_REVIEW,
    }
)
CLAIMABLE_STATES = frozenset({JobState.QUEUED, JobState.RETRYING})


class AttemptOutcome(StrEnum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"
    LOST = "lost"
    DUPLICATE = "duplicate"
    DEFERRED = "deferred"
