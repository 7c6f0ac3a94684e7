"""Reconciliation: settle payments under review from the provider's truth, report the rest.

Safe to run any number of times: it changes only jobs still in needs_review, and a second
run finds them settled. Reports (mismatches, duplicates, missing charges) change nothing.
A settlement writes the job's events (`job.succeeded` with `payment.*`, or `job.failed`) in
its own transaction, as a worker's finish does (tasks/webhooks.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from integrations.errors import IntegrationError
from integrations.http import get_http_client
from integrations.outcome import LedgerEffect
from integrations.payments.base import PaymentProvider, PaymentResult, PaymentStatus
from integrations.payments.providers import PAYMENT_PROVIDERS, provider_for
from store.db import get_database
from store.errors import JobError
from store.models import Job
from store.payments import job_keys, record_effects
from store.reconcile import jobs_under_review, recent_ledger, settle
from store.states import ErrorClass, JobState
from store.types import utcnow
from tasks.webhooks import Outbox

log = structlog.get_logger(__name__)

BATCH = 500
RECENT = timedelta(hours=48)


@dataclass(frozen=True)
class Finding:
    """One thing reconciliation saw: what, about which job, and the particulars."""

    kind: str  # adopted_charge | adopted_decline | not_charged | amount_mismatch |
    # missing_at_provider | duplicate | unresolved
    job_id: str
    details: dict[str, Any] = field(default_factory=dict)


def _operation(job: Job) -> tuple[str, str]:
    _, provider, operation = job.type.split(".", 2)
    return provider, operation


def _settle_failed(settings: Settings, job: Job, error: JobError, note: str) -> None:
    """Settle a job under review as failed; its `job.failed` event commits with it."""
    outbox = Outbox(settings)
    with get_database(settings).session() as session:
        if settle(session, job.id, JobState.FAILED, utcnow(), error=error, note=note):
            outbox.collect_end(session, job.id)
    outbox.publish()


def _adopt(settings: Settings, job: Job, found: PaymentResult, operation: str) -> Finding:
    db = get_database(settings)
    now = utcnow()
    if found.declined:
        decline = found.decline
        error = JobError(
            ErrorClass.DECLINED,
            decline.code if decline else "declined",
            decline.message if decline else "declined by the provider",
        )
        _settle_failed(settings, job, error, "provider: declined")
        return Finding("adopted_decline", str(job.id), {"reference": found.reference})
    result = {"status": found.status.value, "reference": found.reference, "amount": found.amount}
    amount = found.amount_captured if operation == "charge" else 0
    effect = LedgerEffect(operation, found.reference, found.reference, amount, found.currency)
    outbox = Outbox(settings)
    try:
        with db.session() as session:
            if settle(
                session,
                job.id,
                JobState.SUCCEEDED,
                now,
                result=result,
                note="provider: the payment exists",
            ):
                record_effects(session, job.id, job.tenant_id, _operation(job)[0], [effect])
                # job.succeeded and payment.* commit with the settlement, or not at all.
                outbox.collect_end(session, job.id, [effect])
    except IntegrityError:
        return Finding("duplicate", str(job.id), {"reference": found.reference})
    outbox.publish()
    return Finding("adopted_charge", str(job.id), {"reference": found.reference})


def _review(settings: Settings, provider: PaymentProvider, job: Job) -> Finding:
    _, operation = _operation(job)
    with get_database(settings).session() as session:
        key = job_keys(session, job.id).get(operation)
    if key is None or operation not in ("charge", "authorize"):
        return Finding("unresolved", str(job.id), {"reason": "no key or not a charge"})
    found = provider.find_by_key(key)
    if found is None:
        if not PAYMENT_PROVIDERS[provider.name].lookup_by_key:
            return Finding("unresolved", str(job.id), {"reason": f"{provider.name} cannot search"})
        error = JobError(
            ErrorClass.NOT_CHARGED,
            "not_charged",
            "the provider holds no payment under this job's key",
        )
        _settle_failed(settings, job, error, "provider: no payment under the key")
        return Finding("not_charged", str(job.id), {"key": key})
    expected = job.payload.get("amount")
    if expected is not None and found.amount != expected:
        return Finding(
            "amount_mismatch", str(job.id), {"expected": expected, "provider": found.amount}
        )
    return _adopt(settings, job, found, operation)


def _check_recent(settings: Settings, providers: dict[str, PaymentProvider]) -> list[Finding]:
    findings: list[Finding] = []
    with get_database(settings).session() as session:
        entries = recent_ledger(session, utcnow() - RECENT, BATCH)
        keys = {e.job_id: job_keys(session, e.job_id).get(e.operation) for e in entries}
    for entry in entries:
        provider = providers.get(entry.provider)
        if provider is None:
            continue
        found = provider.retrieve(entry.payment_reference)
        if found is None:
            findings.append(
                Finding(
                    "missing_at_provider", str(entry.job_id), {"reference": entry.payment_reference}
                )
            )
        elif found.status is not PaymentStatus.DECLINED and found.amount_captured < entry.amount:
            findings.append(
                Finding(
                    "amount_mismatch",
                    str(entry.job_id),
                    {"ledger": entry.amount, "provider": found.amount_captured},
                )
            )
        key = keys.get(entry.job_id)
        by_key = provider.find_by_key(key) if key else None
        if by_key is not None and by_key.reference != entry.payment_reference:
            findings.append(
                Finding(
                    "duplicate",
                    str(entry.job_id),
                    {"ledger": entry.payment_reference, "key": by_key.reference},
                )
            )
    return findings


def reconcile(settings: Settings) -> list[Finding]:
    """Settle what is safe, report what is not; returns every finding."""
    http = get_http_client(settings)
    providers: dict[str, PaymentProvider] = {}
    for name in PAYMENT_PROVIDERS:
        providers[name] = provider_for(name, settings, http)
    findings: list[Finding] = []
    with get_database(settings).session() as session:
        review = jobs_under_review(session, BATCH)
    for job in review:
        provider = providers.get(_operation(job)[0])
        if provider is None:
            findings.append(Finding("unresolved", str(job.id), {"reason": "unknown provider"}))
            continue
        try:
            findings.append(_review(settings, provider, job))
        except IntegrationError as exc:
            findings.append(Finding("unresolved", str(job.id), {"reason": exc.message}))
    try:
        findings.extend(_check_recent(settings, providers))
    except IntegrationError as exc:
        log.warning("reconcile.provider_unavailable", error=exc.message)
    for finding in findings:
        log.info("reconcile.finding", kind=finding.kind, job_id=finding.job_id, **finding.details)
    return findings


def reconcile_job(settings: Settings, job_id: uuid.UUID) -> Finding | None:
    """Settle one payment job under review now (e.g. when a provider webhook mentions it)."""
    with get_database(settings).session() as session:
        job = session.get(Job, job_id)
    if job is None or job.state != JobState.NEEDS_REVIEW.value:
        return None
    provider_name = _operation(job)[0]
    if provider_name not in PAYMENT_PROVIDERS:
        return None
    provider = provider_for(provider_name, settings, get_http_client(settings))
    try:
        return _review(settings, provider, job)
    except IntegrationError as exc:
        return Finding("unresolved", str(job.id), {"reason": exc.message})
