"""Whether a finished job may be sent round again: the one check before any retry or replay.

`replay_refusal` answers for the API's retry and replay, the console and the CLI, dry run or
not: a dry run lists exactly the jobs the replay itself would withhold, for the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings
from integrations.registry import get_job_type
from store.lifecycle import had_unknown_outcome
from store.models import Job
from store.payment_claims import PaymentRefused, refund_refusal
from store.payments import first_key_at
from store.replay import REPLAYABLE_STATES
from store.types import utcnow

OUTCOME_UNKNOWN = "outcome_unknown"
NOT_REPLAYABLE = "not_replayable"


@dataclass(frozen=True)
class Refusal:
    """Why a job is withheld from a retry or replay: an error code, a message, details."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, refused: PaymentRefused) -> Refusal:
        """The refusal of a refund the payment's balance no longer covers."""
        return cls(refused.code, refused.message, dict(refused.details))


def replay_refusal(
    session: Session, job: Job, settings: Settings, *, force: bool = False
) -> Refusal | None:
    """Why `job` may not be queued again now, or None.

    First `not_replayable` for a job in any state but dead, failed or needs_review (a
    cancelled refund is refused for its state, not its balance), then `outcome_unknown` (see
    `forgotten_outcome`; `force` overrides it, audited by the caller), then
    `refund_exceeds_captured` for a refund whose payment can no longer cover it (never
    overridden). The replay itself re-checks the refund under the payment's lock.
    """
    if job.state not in {s.value for s in REPLAYABLE_STATES}:
        return Refusal(
            NOT_REPLAYABLE,
            f"a {job.state} job cannot be retried; only dead, failed and needs_review",
            {"state": job.state},
        )
    if not force and forgotten_outcome(session, job, settings):
        return Refusal(
            OUTCOME_UNKNOWN,
            "an earlier attempt may have moved money and the provider may have forgotten its "
            "key; settle it by webhook or reconciliation, or retry with force",
        )
    refused = refund_refusal(session, job.id)
    return Refusal.of(refused) if refused is not None else None


def forgotten_outcome(session: Session, job: Job, settings: Settings) -> bool:
    """Whether re-sending this job could move money twice with nobody able to tell.

    True for a payment operation that had an unknown outcome, whose key the provider may have
    forgotten (it is older than the provider's retention minus CONVEYOR_PAYMENT_KEY_MARGIN_S),
    and whose provider cannot look the effect up first (Adyen; Stripe charges can: the worker
    looks before it sends).
    """
    job_type = get_job_type(job.type)
    if job_type is None or job_type.key_retention is None or job_type.lookup_by_key:
        return False
    first = first_key_at(session, job.id)
    if first is None or not had_unknown_outcome(session, job.id):
        return False
    margin = timedelta(seconds=settings.payment_key_margin_s)
    return utcnow() - first >= job_type.key_retention - margin
