"""Whether re-sending a finished job could move money twice: the check before any replay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from config.settings import Settings
from integrations.registry import get_job_type
from store.lifecycle import had_unknown_outcome
from store.models import Job
from store.payments import first_key_at
from store.types import utcnow


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
