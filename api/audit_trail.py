"""Audit rows for a tenant's own stopping actions through `/v1`.

A cancel that took effect leaves a row naming the key that asked (`GET /v1/audit-events`,
`/ops/audit`). A capture, void or refund submitted is audited by the store, in the transaction
that commits its job (`store.payment_claims.audit_claim`).
"""

from __future__ import annotations

import uuid

from api.deps import Principal
from store.db import Database
from store.replay import audit


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
