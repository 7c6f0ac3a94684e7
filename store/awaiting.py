"""Jobs awaiting their provider: found by the payment they await, made due when news arrives."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from store.models import Job
from store.states import JobState


def wake_awaiting(
    session: Session, provider: str, payment_reference: str, now: datetime
) -> list[uuid.UUID]:
    """Make the poll of every job awaiting `provider` about this payment due now.

    Called when the provider's webhook about the payment arrives, so the job settles within the
    due-job publisher's poll instead of at its next scheduled look-up. Returns their ids.
    """
    result = session.execute(
        update(Job)
        .where(
            Job.state == JobState.AWAITING_PROVIDER.value,
            Job.type.startswith(f"payments.{provider}."),
            Job.result["reference"].as_string() == payment_reference,
        )
        .values(next_attempt_at=now, updated_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())
