"""Request and response bodies of the jobs API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.inputs import Screened, Text, UtcDatetime
from store.models import Attempt, Job


class RetryOverride(BaseModel):
    """Per-job retry settings; the server's caps still apply."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1, le=100, strict=True)
    base_s: float | None = Field(default=None, gt=0, le=3600, strict=True)
    cap_s: float | None = Field(default=None, gt=0, le=86400, strict=True)
    max_age_s: float | None = Field(default=None, gt=0, le=30 * 86400, strict=True)


class JobCreate(BaseModel):
    """Submit one job: its type, a payload valid against that type's schema, an optional time."""

    model_config = ConfigDict(extra="forbid")

    type: Text = Field(min_length=1, max_length=100, examples=["data.sandbox.fetch_rates"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"base": "EUR"}])
    run_at: UtcDatetime | None = Field(
        default=None, description="run no earlier than this (ISO 8601 with a time zone)"
    )
    retry: RetryOverride | None = Field(
        default=None, description="override the job type's retry policy, within server caps"
    )
    callback_url: Screened | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="http(s) URL that receives the job's terminal event (`job.*`), signed with "
        "the tenant's callback secret (POST /v1/webhook-callbacks/secret); every address the "
        "host resolves to must be public",
        examples=["https://example.com/conveyor/callback"],
    )


class AttemptOut(BaseModel):
    """One attempt at a job."""

    number: int
    outcome: str
    started_at: datetime
    finished_at: datetime
    latency_ms: int
    http_status: int | None
    error_class: str | None
    error_message: str | None
    next_attempt_at: datetime | None
    retry_after_s: float | None
    request_excerpt: str | None
    response_excerpt: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        """Render an attempt row."""
        return cls(
            number=attempt.number,
            outcome=attempt.outcome,
            started_at=attempt.started_at,
            finished_at=attempt.finished_at,
            latency_ms=attempt.latency_ms,
            http_status=attempt.http_status,
            error_class=attempt.error_class,
            error_message=attempt.error_message,
            next_attempt_at=attempt.next_attempt_at,
            retry_after_s=attempt.retry_after_s,
            request_excerpt=attempt.request_excerpt,
            response_excerpt=attempt.response_excerpt,
        )


class JobOut(BaseModel):
    """A job as its tenant sees it."""

    id: uuid.UUID
    type: str
    state: str
    queue: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    max_attempts: int
    replays: int
    retry_policy: dict[str, Any] | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    cancel_requested_at: datetime | None
    callback_url: str | None = None
    attempt_history: list[AttemptOut] | None = None

    @classmethod
    def of(cls, job: Job, with_attempts: bool = False) -> JobOut:
        """Render a job row, with its attempts when they were loaded."""
        return cls(
            id=job.id,
            type=job.type,
            state=job.state,
            queue=job.queue,
            payload=job.payload,
            result=job.result,
            error=job.error,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            replays=job.replays,
            retry_policy=job.retry_policy,
            idempotency_key=job.idempotency_key,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            next_attempt_at=job.next_attempt_at,
            cancel_requested_at=job.cancel_requested_at,
            callback_url=job.callback_url,
            attempt_history=[AttemptOut.of(a) for a in job.attempt_rows] if with_attempts else None,
        )


class JobPage(BaseModel):
    """A page of jobs, newest first, and the cursor for the next page."""

    items: list[JobOut]
    next_cursor: str | None


class JobTypeOut(BaseModel):
    """A job type clients may submit, with the JSON schema its payload must satisfy."""

    name: str
    queue: str
    description: str
    payload_schema: dict[str, Any]
