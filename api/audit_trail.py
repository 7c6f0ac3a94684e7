"""Audit rows for a tenant's own money-moving and stopping actions through `/v1`.

A capture, void or refund submitted, and a cancel that took effect, each leave a row naming the
key that asked (`GET /v1/audit-events`, `/ops/audit`). Written right after the job commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from api.deps import Principal
from store.db import Database
from store.payment_claims import PaymentClaim
from store.replay import audit


def audit_claims(
    db: Database, principal: Principal, claims: Iterable[tuple[uuid.UUID, PaymentClaim]]
) -> None:
    """One `payment.<operation>` row per submitted capture, void or refund."""
    rows = list(claims)
    if not rows:
        return
    with db.session() as session:
        for job_id, claim in rows:
            details = {
                "provider": claim.provider,
                "payment_reference": claim.payment_reference,
                "amount": claim.amount,
                "currency": claim.currency,
            }
            audit(
                session,
                principal.tenant_id,
                principal.actor,
                f"payment.{claim.operation}",
                details,
                job_id=job_id,
            )


def audit_cancel(db: Database, principal: Principal, job_id: uuid.UUID, result: str) -> None:
    """A `job.cancel` row for a cancel that cancelled a job or asked a running one to stop."""
    with db.session() as session:
        audit(
            session,
            principal.tenant_id,
            principal.actor,
            "job.cancel",
            {"result": result},
            job_id=job_id,
        )
