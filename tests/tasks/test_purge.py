"""The purge pass on real SQLite and PostgreSQL: old terminal jobs go, in bounded batches;
running jobs, recent ones and jobs the payment ledger names stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, select, update

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.models import Attempt, Job, LedgerEntry, PaymentHold
from store.types import utcnow
from tasks.purge import purge
from tests.tasks.factories import make_job

RATES = "data.sandbox.fetch_rates"
DAY = timedelta(days=1)


def aged(settings: Settings, tenant: uuid.UUID, state: str, age: timedelta) -> uuid.UUID:
    """A job in `state` that finished (or, if running, started) `age` ago, with one attempt."""
    job_id = make_job(settings, tenant, RATES, {"base": "EUR"})
    when = utcnow() - age
    with get_database(settings).session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state=state, finished_at=None if state == "running" else when)
        )
        session.execute(
            insert(Attempt).values(
                job_id=job_id, number=1, started_at=when, finished_at=when, outcome="succeeded"
            )
        )
    return job_id


def remaining(settings: Settings) -> set[uuid.UUID]:
    with get_database(settings).session() as session:
        return set(session.scalars(select(Job.id)))


def test_purge_removes_only_old_terminal_jobs_and_keeps_ledger_jobs(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given jobs old and new, finished and not, one of them named by the payment ledger
    retention = settings.model_copy(update={"purge_retention_s": 7 * 86400.0, "purge_batch": 2})
    tenant = tenant_key.tenant_id
    old = [aged(settings, tenant, state, 8 * DAY) for state in ("succeeded", "failed", "dead")]
    old += [aged(settings, tenant, "cancelled", 9 * DAY)]
    recent = aged(settings, tenant, "succeeded", 6 * DAY)
    running = aged(settings, tenant, "running", 30 * DAY)
    charged = aged(settings, tenant, "succeeded", 30 * DAY)
    with get_database(settings).session() as session:
        session.execute(
            insert(LedgerEntry).values(
                id=uuid.uuid4(),
                job_id=charged,
                tenant_id=tenant,
                provider="sandbox",
                operation="charge",
                provider_reference="ch_1",
                payment_reference="ch_1",
                amount=1000,
                currency="EUR",
                created_at=utcnow(),
            )
        )
    # When one pass may run a single batch of two
    first = purge(retention, max_batches=1)
    # Then exactly one batch went
    assert first == 2
    assert len(remaining(settings) & set(old)) == 2
    # When the pass runs to the end
    purge(retention)
    # Then all old terminal jobs and their attempts are gone; the rest stays, ledger row too
    assert remaining(settings) == {recent, running, charged}
    with get_database(settings).session() as session:
        assert set(session.scalars(select(Attempt.job_id))) == {recent, running, charged}
        assert session.scalars(select(LedgerEntry.job_id)).all() == [charged]


def test_purge_keeps_a_refund_under_review_whose_hold_still_counts(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given two old refund jobs holding 400 each: one under review, one failed
    retention = settings.model_copy(update={"purge_retention_s": 7 * 86400.0})
    tenant = tenant_key.tenant_id
    reviewed = aged(settings, tenant, "needs_review", 30 * DAY)
    failed = aged(settings, tenant, "failed", 30 * DAY)
    with get_database(settings).session() as session:
        for job_id in (reviewed, failed):
            session.execute(
                insert(PaymentHold).values(
                    job_id=job_id,
                    tenant_id=tenant,
                    provider="stripe",
                    payment_reference="pi_1",
                    amount=400,
                    currency="eur",
                )
            )

    # When the purge runs
    purge(retention)

    # Then the reviewed refund and its hold stay (money may have moved); the failed one goes
    assert remaining(settings) == {reviewed}
    with get_database(settings).session() as session:
        assert session.scalars(select(PaymentHold.job_id)).all() == [reviewed]
