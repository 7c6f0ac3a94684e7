"""Payment jobs at submit: which earlier payment a capture, void or refund claims.

The claim itself is checked in the transaction that commits the job (store/payment_claims.py):
the payment must be in the tenant's own ledger, and a refund reserves what it refunds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.orm import Session

from api.errors import ApiError
from config.settings import Settings
from integrations.registry import get_job_type
from store.jobs import NewJob
from store.lifecycle import had_unknown_outcome
from store.models import Job
from store.payment_claims import PaymentClaim, PaymentRefused
from store.payments import first_key_at
from store.types import utcnow

CLAIMING_OPERATIONS = frozenset({"capture", "void", "refund"})


def attach_claim(new: NewJob) -> NewJob:
    """`new` with the claim its payload makes on an earlier payment, if it makes one."""
    family, _, rest = new.type.partition(".")
    provider, _, operation = rest.partition(".")
    if family != "payments" or operation not in CLAIMING_OPERATIONS:
        return new
    amount = new.payload.get("amount")
    currency = new.payload.get("currency")
    claim = PaymentClaim(
        provider=provider,
        operation=operation,
        payment_reference=str(new.payload["reference"]),
        amount=int(amount) if amount is not None else None,
        currency=str(currency) if currency is not None else None,
    )
    return replace(new, claim=claim)


def refused(exc: PaymentRefused, loc: tuple[str | int, ...] = ("body",)) -> ApiError:
    """The API's 422 for a claim the ledger does not back; it never echoes the reference."""
    details = {"loc": [*loc, "payload", exc.param], **exc.details}
    return ApiError(422, exc.code, exc.message, details)


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


def outcome_unknown(job_id: str) -> ApiError:
    """409 for a retry that could double a payment; `force` overrides it, audited."""
    return ApiError(
        409,
        "outcome_unknown",
        "an earlier attempt may have moved money and the provider may have forgotten its key; "
        "settle it by webhook or reconciliation, or retry with force",
        {"id": job_id, "force": False},
    )
