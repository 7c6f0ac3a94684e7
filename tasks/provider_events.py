"""Apply one recorded provider webhook: link it to our jobs through the ledger, mark it done.

Adopting the provider's view of a payment is reconciliation's job: when the event names a
payment job still under review (Stripe's `metadata.conveyor_key`), that job is reconciled now.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import structlog

from config.settings import Settings
from store.awaiting import wake_awaiting
from store.db import get_database
from store.payments import job_for_key
from store.provider_events import get_event, ledger_for_payment, mark_processed
from store.types import utcnow
from tasks.reconcile import reconcile_job

log = structlog.get_logger(__name__)

APPLY_EVENT_TASK = "payments.webhooks.apply_event"
APPLY_EVENT_QUEUE = "payments"


class Applied(StrEnum):
    """What applying one event delivery did."""

    LINKED = "linked"  # processed; ledger entries (so jobs) share its payment reference
    UNLINKED = "unlinked"  # processed; no job of ours made that payment
    ALREADY_PROCESSED = "already_processed"  # a duplicate delivery; left alone
    MISSING = "missing"  # no such event row


def apply_event(settings: Settings, event_id: uuid.UUID) -> str:
    """Mark a provider event processed and log the jobs it concerns; returns an Applied value."""
    with get_database(settings).session() as session:
        event = get_event(session, event_id)
        if event is None:
            log.warning("provider_event.missing", provider_event_id=str(event_id))
            return Applied.MISSING.value
        entries = (
            ledger_for_payment(session, event.provider, event.payment_reference)
            if event.payment_reference
            else []
        )
        # The conditional UPDATE, not the read above, decides: two deliveries cannot both apply.
        if not mark_processed(session, event_id, utcnow()):
            return Applied.ALREADY_PROCESSED.value
        # A job awaiting this payment settles at once rather than at its next poll.
        woken = (
            wake_awaiting(session, event.provider, event.payment_reference, utcnow())
            if event.payment_reference
            else []
        )
        context = {
            "provider": event.provider,
            "event_type": event.event_type,
            "provider_event_id": event.event_id,
            "payment_reference": event.payment_reference,
        }
        job_ids = list(dict.fromkeys(str(entry.job_id) for entry in entries))
    # A payment we never learned the outcome of: the event is a good moment to settle it.
    keyed = _job_by_key(settings, event.payload)
    if keyed is not None:
        finding = reconcile_job(settings, keyed)
        if finding is not None:
            log.info("provider_event.reconciled", job_id=str(keyed), kind=finding.kind)
    # Logged after the commit, so a line never claims an event that was rolled back.
    for woken_id in woken:
        log.info("provider_event.woke_awaiting_job", job_id=str(woken_id), **context)
    if not job_ids:
        log.info("provider_event.applied", job_id=None, **context)
        return Applied.UNLINKED.value
    for job_id in job_ids:
        log.info("provider_event.applied", job_id=job_id, **context)
    return Applied.LINKED.value


def _job_by_key(settings: Settings, payload: dict[str, Any]) -> uuid.UUID | None:
    """The job whose payment key a Stripe event carries in `metadata.conveyor_key`."""
    obj = payload.get("data", {}).get("object", {}) if isinstance(payload, dict) else {}
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    key = metadata.get("conveyor_key") if isinstance(metadata, dict) else None
    if not isinstance(key, str):
        return None
    with get_database(settings).session() as session:
        return job_for_key(session, key)
