"""What a job type is: a name, a queue, a payload schema and a handler returning an outcome."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from config.settings import Settings
from integrations.errors import Cancelled
from integrations.http import HttpClient

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class JobContext:
    """What a handler may use besides its payload; no DB session, no Celery."""

    job_id: uuid.UUID
    attempt: int
    settings: Settings
    http: HttpClient
    deadline: float | None = None
    cancel_requested: Callable[[], bool] = field(default=lambda: False)
    # Saves the key of an operation before its first use and returns the saved one after.
    key_store: Callable[[str, str], str] | None = None

    def checkpoint(self, step: str) -> None:
        """Stop here if the job was cancelled; call it between steps that have effects."""
        if self.cancel_requested():
            raise Cancelled(step)

    def idempotency_key(self, operation: str) -> str:
        """The provider key for one operation of this job: the same on every retry (I2, I5).

        With a key store it is persisted before it is first sent, and read back afterwards.
        """
        derived = f"cv-{self.job_id}-{operation}"
        return self.key_store(operation, derived) if self.key_store else derived


@dataclass(frozen=True)
class Effect:
    """Something a provider did that must be written down once: a charge, a refund."""

    operation: str
    provider_reference: str
    payment_reference: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Succeeded:
    """The provider did what was asked; `result` is stored on the job, `effects` in the ledger."""

    result: dict[str, Any]
    http_status: int | None = None
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class Failed:
    """A business outcome that is final, such as a card decline; not a crash."""

    code: str
    message: str
    http_status: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


Outcome = Succeeded | Failed


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a job is retried; a job type may set its own."""

    max_attempts: int | None = None
    base_s: float | None = None
    cap_s: float | None = None
    max_age_s: float | None = None


@dataclass(frozen=True)
class JobType(Generic[P]):
    """A kind of job: its stable name (also the Celery task name), queue, schema and handler."""

    name: str
    queue: str
    payload_model: type[P]
    handler: Callable[[P, JobContext], Outcome]
    description: str = ""
    # Retry after an unknown outcome only when a repeat cannot double the effect: the call is
    # read-only or carries an idempotency key. Otherwise the job goes to needs_review.
    retry_unknown_outcome: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long the provider honours an idempotency key; past it, an unknown outcome is not
    # retried blindly but sent to reconciliation (needs_review).
    key_retention: timedelta | None = None

    @property
    def provider(self) -> str:
        """The provider this job type calls: the middle of `<family>.<provider>.<action>`."""
        parts = self.name.split(".")
        return parts[1] if len(parts) == 3 else self.name

    def run(self, payload: dict[str, Any], ctx: JobContext) -> Outcome:
        """Validate the stored payload and run the handler."""
        return self.handler(self.payload_model.model_validate(payload), ctx)

    def payload_schema(self) -> dict[str, Any]:
        """The JSON schema clients validate against."""
        return self.payload_model.model_json_schema()
