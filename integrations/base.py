"""What a job type is: a name, a queue, a payload schema and a handler returning an outcome."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from config.settings import Settings
from integrations.data.base import SyncStore
from integrations.errors import Cancelled
from integrations.http import HttpClient
from integrations.outcome import Failed, LedgerEffect, Outcome, Pending, Succeeded

__all__ = [
    "Failed",
    "JobContext",
    "JobType",
    "LedgerEffect",
    "Outcome",
    "Pending",
    "RetryPolicy",
    "Succeeded",
]

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
    # An earlier attempt may have taken effect without our hearing of it: an operation that
    # can look its effect up at the provider does so before it sends anything again.
    lookup_first: bool = False
    # The provider's stored webhook payloads for a payment reference, newest first.
    provider_events: Callable[[str], list[dict[str, Any]]] = field(default=lambda _: [])
    # Data syncs store their pages and cursor through it (tasks/data_sync.py builds it).
    data: SyncStore | None = None

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
    # Settles a job that awaits its provider (after a `Pending`): given the pending result,
    # look the effect up and answer again. None: the job type never returns `Pending`.
    settle: Callable[[P, JobContext, dict[str, Any]], Outcome] | None = None
    # Its calls move money or otherwise act: a 2xx it cannot interpret is an unknown outcome.
    effectful: bool = False
    # After an unknown outcome its provider can find the effect by the idempotency key, so a
    # manual retry looks first; without it a retry is refused until the outcome is settled.
    lookup_by_key: bool = False
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

    def settle_pending(
        self, payload: dict[str, Any], ctx: JobContext, pending: dict[str, Any]
    ) -> Outcome:
        """Ask again about a `Pending` result; a type without `settle` stays pending."""
        if self.settle is None:
            return Pending(pending)
        return self.settle(self.payload_model.model_validate(payload), ctx, pending)

    def payload_schema(self) -> dict[str, Any]:
        """The JSON schema clients validate against."""
        return self.payload_model.model_json_schema()
