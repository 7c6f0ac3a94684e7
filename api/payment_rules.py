"""Payment jobs at submit: which earlier payment a capture, void or refund claims.

The claim itself is checked in the transaction that commits the job (store/payment_claims.py):
the payment must be in the tenant's own ledger, and a refund reserves what it refunds.
"""

from __future__ import annotations

from dataclasses import replace

from api.errors import ApiError
from store.jobs import NewJob
from store.payment_claims import PaymentClaim, PaymentRefused
from tasks.replay_guard import forgotten_outcome

__all__ = ["attach_claim", "forgotten_outcome", "outcome_unknown", "refused"]

CLAIMING_OPERATIONS = frozenset({"capture", "void", "refund"})


def attach_claim(new: NewJob, actor: str) -> NewJob:
    """`new` with the claim its payload makes on an earlier payment, if it makes one; `actor`
    is who submits it (its audit row commits with the job)."""
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
        actor=actor,
    )
    return replace(new, claim=claim)


def refused(exc: PaymentRefused, loc: tuple[str | int, ...] = ("body",)) -> ApiError:
    """The API's 422 for a claim the ledger does not back; it never echoes the reference."""
    details = {"loc": [*loc, "payload", exc.param], **exc.details}
    return ApiError(422, exc.code, exc.message, details)


def outcome_unknown(job_id: str) -> ApiError:
    """409 for a retry that could double a payment; `force` overrides it, audited."""
    return ApiError(
        409,
        "outcome_unknown",
        "an earlier attempt may have moved money and the provider may have forgotten its key; "
        "settle it by webhook or reconciliation, or retry with force",
        {"id": job_id, "force": False},
    )
