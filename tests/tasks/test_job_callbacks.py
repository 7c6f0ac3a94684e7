"""A job's own `callback_url` gets its terminal event through the outbox and the delivery path:
a delivery row and job written with the finish, attempts, retries, Standard Webhooks signature
with the tenant's callback secret, the address checked again at delivery."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config.settings import Settings
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.callbacks import create_callback_secret
from store.db import get_database
from store.keys import IssuedKey
from store.models import Job
from store.types import utcnow
from store.webhook_models import (
    WebhookCallbackDelivery,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEvent,
)
from store.webhooks import rotate_secret
from tasks.executor import execute
from tasks.webhooks import deliver
from tests.support.receiver import Reply, receiver
from tests.tasks.factories import make_job
from tests.tasks.test_webhook_delivery import (
    LOOPBACK,
    attempts,
    job_row,
    run_until_settled,
    verify,
)

FETCH_RATES = "data.sandbox.fetch_rates"


def callback_secret(settings: Settings, tenant_id: uuid.UUID) -> str:
    """The tenant's callback secret, created as the API does."""
    secret = generate_secret()
    with get_database(settings).session() as session:
        create_callback_secret(session, tenant_id, SecretBox(settings).seal(secret), utcnow())
    return secret


def job_with_callback(settings: Settings, tenant_id: uuid.UUID, url: str) -> uuid.UUID:
    """A queued rates job carrying `callback_url` (checked by the API at submit)."""
    job_id = make_job(settings, tenant_id, FETCH_RATES, {"base": "EUR"})
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(callback_url=url))
    return job_id


def callback_delivery(settings: Settings) -> WebhookCallbackDelivery:
    with get_database(settings).session() as session:
        row = session.scalars(select(WebhookCallbackDelivery)).one()
        session.expunge(row)
        return row


def ended_with_callback(
    s: Settings, tenant_id: uuid.UUID, url: str
) -> tuple[uuid.UUID, WebhookCallbackDelivery]:
    """A rates job with `callback_url` run to success; its id and its callback delivery."""
    job_id = job_with_callback(s, tenant_id, url)
    assert execute(job_id, s).value == "succeeded"
    return job_id, callback_delivery(s)


def test_the_terminal_event_is_delivered_to_the_callback_url_and_verifies(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given a tenant with a callback secret and no endpoints, a job with a callback URL, and a
    # receiver that first answers 503
    s = hooked
    secret = callback_secret(s, tenant_key.tenant_id)
    replies = iter([Reply(503, body=b"busy"), Reply(204, body=b"")])
    with receiver(lambda _: next(replies)) as rx:
        job_id = job_with_callback(s, tenant_key.tenant_id, rx.url("/cb"))
        # When the job succeeds
        assert execute(job_id, s).value == "succeeded"
        # Then its event and one callback delivery (no endpoint delivery) were committed with it
        with get_database(s).session() as session:
            event = session.scalars(select(WebhookEvent)).one()
            assert (event.type, event.job_id) == ("job.succeeded", job_id)
            assert session.scalars(select(WebhookDelivery)).all() == []
        delivery = callback_delivery(s)
        assert delivery.event_id == event.id and delivery.url == rx.url("/cb")
        assert job_row(s, delivery.job_id).type == "webhooks.callback.deliver"
        # And delivering it retries the 503 and lands, signed with the callback secret
        assert run_until_settled(s, delivery.job_id) == "succeeded"
    first, second = rx.received
    assert second.path == "/cb"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(event.id)
    body = verify(secret, second)
    assert body["type"] == "job.succeeded"
    assert body["data"]["job_id"] == str(job_id)  # type: ignore[index]
    rows = attempts(s, delivery.job_id)
    assert [(a.outcome, a.http_status) for a in rows] == [("retry", 503), ("succeeded", 204)]


def test_a_callback_name_turning_private_at_delivery_is_refused(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given a job whose callback host resolved to a public address at submit
    s = hooked
    callback_secret(s, tenant_key.tenant_id)
    _, delivery = ended_with_callback(s, tenant_key.tenant_id, "http://cb.example:8080/in")

    def private(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]

    # When the name answers a private address at delivery / Then it fails for good, naming why
    assert deliver(delivery.job_id, s, resolver=private) == "failed"
    assert job_row(s, delivery.job_id).error["code"] == "refused_private"  # type: ignore[index]


def test_a_rotated_callback_secret_signs_twice_in_the_grace_then_once(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    # Given a callback secret rotated with a grace period, and two jobs that ended
    s = hooked
    old = callback_secret(s, tenant_key.tenant_id)
    new = generate_secret()
    with get_database(s).session() as session:
        row = session.get(WebhookCallbackSecret, tenant_key.tenant_id)
        assert row is not None
        grace = utcnow() + timedelta(minutes=5)
        rotate_secret(row, SecretBox(s).seal(new), grace, utcnow())
    with receiver() as rx:
        for _ in range(2):
            job_id = job_with_callback(s, tenant_key.tenant_id, rx.url("/cb"))
            assert execute(job_id, s).value == "succeeded"
        during, after = _callback_job_ids(s)
        # When one is delivered during the grace / Then both secrets verify it
        assert run_until_settled(s, during, LOOPBACK) == "succeeded"
        verify(new, rx.received[-1])
        verify(old, rx.received[-1])
        # When the other is delivered after the grace
        with get_database(s).session() as session:
            session.execute(
                update(WebhookCallbackSecret).values(
                    previous_secret_until=utcnow() - timedelta(seconds=1)
                )
            )
        assert run_until_settled(s, after, LOOPBACK) == "succeeded"
    # Then only the new one does
    verify(new, rx.received[-1])
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(rx.received[-1].body.decode(), rx.received[-1].headers)


def _callback_job_ids(settings: Settings) -> list[uuid.UUID]:
    with get_database(settings).session() as session:
        stmt = select(WebhookCallbackDelivery.job_id).order_by(WebhookCallbackDelivery.created_at)
        return list(session.scalars(stmt))


def test_a_failed_callback_delivery_is_retried_through_the_jobs_api_with_the_same_id(
    hooked: Settings, tenant_key: IssuedKey
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import auth

    # Given a callback delivery that failed for good (the receiver answered 400)
    s = hooked
    secret = callback_secret(s, tenant_key.tenant_id)
    healthy = False
    with receiver(lambda _: Reply(200) if healthy else Reply(400)) as rx:
        job_id, delivery = ended_with_callback(s, tenant_key.tenant_id, rx.url("/cb"))
        assert run_until_settled(s, delivery.job_id) == "failed"
        # When the receiver is fixed and the tenant retries the delivery as the job it is
        healthy = True
        with TestClient(create_app(s)) as api:
            retried = api.post(f"/v1/jobs/{delivery.job_id}/retry", headers=auth(tenant_key))
            assert retried.status_code == 202, retried.text
            # Then it is delivered, with the event's webhook-id, and listed as delivered
            assert run_until_settled(s, delivery.job_id) == "succeeded"
            listed = api.get(
                "/v1/webhook-callbacks/deliveries",
                params={"job_id": str(job_id)},
                headers=auth(tenant_key),
            ).json()
    first, second = rx.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    verify(secret, second)
    assert [(d["id"], d["state"], d["attempts"]) for d in listed] == [
        (str(delivery.job_id), "succeeded", 2)
    ]
