"""Webhook deliveries run in-process against real receivers, a real database and real Redis.

`deliver` is the function the worker's task calls; here it is called directly so that the
resolver can be injected (no real DNS) and every step's row can be read in between.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config.settings import Settings
from integrations.outbound import Resolver
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.db import get_database
from store.keys import IssuedKey
from store.models import Attempt, Job
from store.outbox import NewEvent, subscribers, write_events
from store.types import utcnow
from store.webhook_models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from store.webhooks import create_endpoint, rotate_secret
from tasks.executor import execute
from tasks.webhooks import deliver, delivery_policy
from tests.integrations.test_outbound import REFUSED
from tests.support.receiver import Received, Reply, receiver
from tests.tasks.factories import make_job, with_sandbox

# Address checks and transport cut-offs do not depend on the database: SQLite only.
transport_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOOPBACK: Resolver = lambda host, port: ["127.0.0.1"]  # noqa: E731


def endpoint(settings: Settings, tenant_id: uuid.UUID, url: str) -> tuple[uuid.UUID, str]:
    """An endpoint registered for the tenant; its id and secret."""
    secret = generate_secret()
    with get_database(settings).session() as session:
        row = create_endpoint(
            session, tenant_id, url, "", [], SecretBox(settings).seal(secret), utcnow()
        )
        return row.id, secret


def emit(
    settings: Settings, tenant_id: uuid.UUID, event_type: str = "job.succeeded"
) -> list[uuid.UUID]:
    """Write one event through the outbox; the delivery job ids it created (held ones too)."""
    db = get_database(settings)
    with db.session() as session:
        before = set(session.scalars(select(WebhookDelivery.job_id)))
    with db.connection() as conn:
        targets = subscribers(conn, tenant_id)
        event = NewEvent(event_type, None, {"job_id": str(uuid.uuid4()), "state": "succeeded"})
        write_events(conn, tenant_id, [event], targets, delivery_policy(settings), utcnow())
    with db.session() as session:
        return sorted(set(session.scalars(select(WebhookDelivery.job_id))) - before)


def job_row(settings: Settings, job_id: uuid.UUID) -> Job:
    with get_database(settings).session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def attempts(settings: Settings, job_id: uuid.UUID) -> Sequence[Attempt]:
    with get_database(settings).session() as session:
        rows = session.scalars(
            select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)
        )
        found = list(rows)
        session.expunge_all()
        return found


def endpoint_row(settings: Settings, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    with get_database(settings).session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        session.expunge(row)
        return row


def run_until_settled(settings: Settings, job_id: uuid.UUID, resolver: Resolver = LOOPBACK) -> str:
    """Run the delivery as the worker would, again whenever it is due, until it settles."""
    deadline = time.monotonic() + 15
    state = "queued"
    while time.monotonic() < deadline:
        state = deliver(job_id, settings, resolver=resolver)
        if state in ("succeeded", "failed", "dead"):
            return state
        if state == "not_claimed":
            state = job_row(settings, job_id).state
            if state in ("succeeded", "failed", "dead"):
                return state
        time.sleep(0.05)
    return state


def verify(secret: str, got: Received) -> dict[str, object]:
    """The body, as the reference `standardwebhooks` verifier accepts it."""
    body = Webhook(secret).verify(got.body.decode(), got.headers)
    assert isinstance(body, dict)
    return body


def test_finished_job_writes_its_event_and_delivery_in_the_same_transaction(
    hooks: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given a tenant with an endpoint and another tenant without any
    s = with_sandbox(hooks, sandbox)
    with receiver() as rx:
        endpoint_id, secret = endpoint(s, tenant_key.tenant_id, rx.url())
        job_id = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"})
        quiet_id = make_job(
            s, other_tenant_key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"}
        )
        # When both jobs run to success
        assert execute(job_id, s).value == "succeeded"
        assert execute(quiet_id, s).value == "succeeded"
        # Then one job.succeeded event and one queued delivery exist, for the first job only
        with get_database(s).session() as session:
            events = session.scalars(select(WebhookEvent)).all()
            assert [(e.type, e.job_id) for e in events] == [("job.succeeded", job_id)]
            assert events[0].data["state"] == "succeeded" and "payload" not in events[0].data
            delivery = session.scalars(select(WebhookDelivery)).one()
            assert delivery.endpoint_id == endpoint_id
        # And delivering it sends a body the reference verifier accepts, with the event id
        assert run_until_settled(s, delivery.job_id) == "succeeded"
    (got,) = rx.received
    assert got.headers["webhook-id"] == str(events[0].id)
    body = verify(secret, got)
    assert body["type"] == "job.succeeded"
    assert body["data"]["job_id"] == str(job_id)  # type: ignore[index]
    (attempt,) = attempts(s, delivery.job_id)
    assert (attempt.outcome, attempt.http_status) == ("succeeded", 200)
    assert attempt.response_excerpt == "ok" and attempt.latency_ms >= 0


def test_503_then_200_is_two_attempts_with_the_same_webhook_id(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    replies = iter([Reply(503, body=b"down"), Reply(200)])
    with receiver(lambda _: next(replies)) as rx:
        _, secret = endpoint(hooks, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        assert run_until_settled(hooks, job_id) == "succeeded"
    first, second = rx.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    verify(secret, second)
    rows = attempts(hooks, job_id)
    assert [(a.outcome, a.http_status) for a in rows] == [("retry", 503), ("succeeded", 200)]
    assert rows[0].response_excerpt == "down" and rows[0].error_class == "transient"


def test_retry_after_sets_the_next_try(hooks: Settings, tenant_key: IssuedKey) -> None:
    # Given a receiver that answers 429 with Retry-After: 30
    with receiver(lambda _: Reply(429, {"Retry-After": "30"})) as rx:
        endpoint(hooks, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        # When the delivery is tried
        assert deliver(job_id, hooks, resolver=LOOPBACK) == "retrying"
        # Then the next try is at least 30 s away (the backoff alone would be 0.02 s) ...
        job = job_row(hooks, job_id)
        (attempt,) = attempts(hooks, job_id)
        assert job.next_attempt_at is not None
        assert job.next_attempt_at - attempt.finished_at >= timedelta(seconds=30)
        assert attempt.retry_after_s == 30 and attempt.error_class == "rate_limited"
        # ... and an early delivery of its message does not send anything
        assert deliver(job_id, hooks, resolver=LOOPBACK) == "not_claimed"
    assert len(rx.received) == 1


def test_410_disables_the_endpoint_and_holds_later_deliveries(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    with receiver(lambda _: Reply(410)) as rx:
        endpoint_id, _ = endpoint(hooks, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        assert deliver(job_id, hooks, resolver=LOOPBACK) == "failed"
        row = endpoint_row(hooks, endpoint_id)
        assert not row.enabled and row.disabled_reason == "the endpoint answered 410 Gone"
        assert job_row(hooks, job_id).error["code"] == "endpoint_gone"  # type: ignore[index]
        # A later event for the disabled endpoint is held, not sent
        (held,) = emit(hooks, tenant_key.tenant_id)
        assert job_row(hooks, held).error["code"] == "endpoint_disabled"  # type: ignore[index]
    assert len(rx.received) == 1


def test_other_4xx_is_permanent(hooks: Settings, tenant_key: IssuedKey) -> None:
    with receiver(lambda _: Reply(400, body=b"bad")) as rx:
        endpoint_id, _ = endpoint(hooks, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        assert deliver(job_id, hooks, resolver=LOOPBACK) == "failed"
    assert len(rx.received) == 1 and endpoint_row(hooks, endpoint_id).enabled


def test_sustained_failure_disables_and_reenable_plus_replay_delivers(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import auth

    # Given an endpoint failing for longer than the auto-disable window (0.3 s here)
    s = hooks.model_copy(update={"webhook_auto_disable_after_s": 0.3})
    healthy = False
    with receiver(lambda _: Reply(200) if healthy else Reply(500)) as rx:
        endpoint_id, secret = endpoint(s, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(s, tenant_key.tenant_id)
        assert deliver(job_id, s, resolver=LOOPBACK) == "retrying"
        assert endpoint_row(s, endpoint_id).failing_since is not None
        time.sleep(0.35)
        # When it fails again after the window
        assert deliver(job_id, s, resolver=LOOPBACK) == "retrying"
        # Then it is disabled with a reason the tenant reads, and its delivery is held
        row = endpoint_row(s, endpoint_id)
        assert not row.enabled and (row.disabled_reason or "").startswith("every delivery failed")
        assert run_until_settled(s, job_id) == "failed"
        assert job_row(s, job_id).error["code"] == "endpoint_disabled"  # type: ignore[index]
        # When the receiver is fixed, the tenant re-enables it and replays the held deliveries
        healthy = True
        with TestClient(create_app(s)) as api:
            path = f"/v1/webhook-endpoints/{endpoint_id}"
            shown = api.get(path, headers=auth(tenant_key)).json()
            assert shown["enabled"] is False and shown["disabled_reason"] == row.disabled_reason
            assert api.patch(path, json={"enabled": True}, headers=auth(tenant_key)).json()[
                "enabled"
            ]
            since = (utcnow() - timedelta(minutes=5)).isoformat()
            replayed = api.post(f"{path}/replay", json={"since": since}, headers=auth(tenant_key))
            assert replayed.json()["delivery_ids"] == [str(job_id)], replayed.text
            # Then it is delivered, with the same webhook-id as before
            assert run_until_settled(s, job_id) == "succeeded"
            listed = api.get(f"{path}/deliveries", headers=auth(tenant_key)).json()
            assert [(d["id"], d["state"]) for d in listed] == [(str(job_id), "succeeded")]
    assert len({r.headers["webhook-id"] for r in rx.received}) == 1
    verify(secret, rx.received[-1])


def test_rotation_signs_with_both_secrets_in_the_grace_then_only_the_new(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    box = SecretBox(hooks)
    with receiver() as rx:
        endpoint_id, old = endpoint(hooks, tenant_key.tenant_id, rx.url())
        new = generate_secret()
        # Given a rotation whose grace period runs
        with get_database(hooks).session() as session:
            row = session.get(WebhookEndpoint, endpoint_id)
            assert row is not None
            rotate_secret(row, box.seal(new), utcnow() + timedelta(minutes=5), utcnow())
        (during,) = emit(hooks, tenant_key.tenant_id)
        assert run_until_settled(hooks, during) == "succeeded"
        # Then both secrets verify the delivery
        verify(new, rx.received[-1])
        verify(old, rx.received[-1])
        # Given the grace period over
        with get_database(hooks).session() as session:
            session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(previous_secret_until=utcnow() - timedelta(seconds=1))
            )
        (after,) = emit(hooks, tenant_key.tenant_id)
        assert run_until_settled(hooks, after) == "succeeded"
    # Then only the new secret verifies
    verify(new, rx.received[-1])
    with pytest.raises(WebhookVerificationError):
        verify(old, rx.received[-1])
    assert len(rx.received[-1].headers["webhook-signature"].split(" ")) == 1


@transport_only
def test_every_refused_form_is_refused_at_delivery(hooks: Settings, tenant_key: IssuedKey) -> None:
    # Given an endpoint whose stored URL was changed behind the API's back to each refused form
    strict = hooks.model_copy(update={"outbound_allow_loopback": False})
    endpoint_id, _ = endpoint(strict, tenant_key.tenant_id, "https://hooks.example/")
    for url, reason in REFUSED:
        with get_database(strict).session() as session:
            session.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(url=url)
            )
        (job_id,) = emit(strict, tenant_key.tenant_id)
        # When it is delivered / Then it fails for good, naming the rule
        assert deliver(job_id, strict, resolver=LOOPBACK) == "failed", url
        assert job_row(strict, job_id).error["code"] == f"refused_{reason}", url  # type: ignore[index]


@transport_only
def test_a_dns_answer_turning_private_after_registration_is_refused(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    # Given an endpoint registered while its name resolved to the receiver
    with receiver() as rx:
        endpoint(hooks, tenant_key.tenant_id, rx.url(host="hooks.example"))
        for address in ("10.0.0.5", "169.254.169.254", "100.64.1.1", "fd00::7", "0.0.0.0", "::"):
            (job_id,) = emit(hooks, tenant_key.tenant_id)

            def answer(host: str, port: int, a: str = address) -> list[str]:
                return [a]

            # When the name now answers a private address / Then it fails, naming the rule
            assert deliver(job_id, hooks, resolver=answer) == "failed", address
            assert job_row(hooks, job_id).error["code"].startswith("refused_")  # type: ignore[index]
    # And nothing was ever sent
    assert rx.received == []


@transport_only
def test_a_redirect_to_loopback_is_not_followed(hooks: Settings, tenant_key: IssuedKey) -> None:
    with (
        receiver() as inside,
        receiver(lambda _: Reply(302, {"Location": inside.url("/admin")})) as rx,
    ):
        endpoint(hooks, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        assert deliver(job_id, hooks, resolver=LOOPBACK) == "failed"
    assert inside.received == [] and len(rx.received) == 1
    assert job_row(hooks, job_id).error["code"] == "http_302"  # type: ignore[index]


@transport_only
def test_a_dripping_receiver_is_cut_at_the_deadline(hooks: Settings, tenant_key: IssuedKey) -> None:
    # Given a receiver sending its answer one byte every 100 ms (20 s in all), a 1 s deadline
    s = hooks.model_copy(update={"webhook_timeout_s": 1.0})
    with receiver(lambda _: Reply(200, body=b"x" * 200, drip_s=0.1)) as rx:
        endpoint(s, tenant_key.tenant_id, rx.url())
        (job_id,) = emit(s, tenant_key.tenant_id)
        started = time.monotonic()
        # When it is delivered / Then the attempt ends near the deadline, to be retried
        assert deliver(job_id, s, resolver=LOOPBACK) == "retrying"
        assert time.monotonic() - started < 8.0  # generous: the body alone would take 20 s
    (attempt,) = attempts(s, job_id)
    assert attempt.error_class == "transient"
    assert job_row(s, job_id).error["code"] == "timeout"  # type: ignore[index]


def test_a_cancel_through_the_api_writes_job_cancelled_in_its_transaction(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import auth

    with receiver() as rx:
        # Given a queued job of a tenant with an endpoint
        _, secret = endpoint(hooks, tenant_key.tenant_id, rx.url())
        job_id = make_job(hooks, tenant_key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"})
        # When the tenant cancels it
        with TestClient(create_app(hooks)) as api:
            cancelled = api.post(f"/v1/jobs/{job_id}/cancel", headers=auth(tenant_key))
            assert cancelled.status_code == 200, cancelled.text
        # Then a job.cancelled event is delivered for it
        with get_database(hooks).session() as session:
            delivery = session.scalars(select(WebhookDelivery)).one()
        assert run_until_settled(hooks, delivery.job_id) == "succeeded"
    body = verify(secret, rx.received[0])
    assert body["type"] == "job.cancelled"
    assert body["data"]["job_id"] == str(job_id)  # type: ignore[index]


def test_an_operator_cancel_writes_job_cancelled_in_its_transaction(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    from tasks.ops import cancel

    with receiver() as rx:
        # Given a queued job of a tenant with an endpoint
        _, secret = endpoint(hooks, tenant_key.tenant_id, rx.url())
        job_id = make_job(hooks, tenant_key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"})
        # When an operator cancels it (console or `conveyor jobs cancel`)
        assert cancel(get_database(hooks), hooks, job_id, "operator:test") == "cancelled"
        # Then a job.cancelled event is delivered for it, as for a tenant's own cancel
        with get_database(hooks).session() as session:
            delivery = session.scalars(select(WebhookDelivery)).one()
        assert run_until_settled(hooks, delivery.job_id) == "succeeded"
    body = verify(secret, rx.received[0])
    assert body["type"] == "job.cancelled"
    assert body["data"]["job_id"] == str(job_id)  # type: ignore[index]


def test_delivery_outcomes_are_counted_and_event_to_delivery_latency_observed(
    hooks: Settings, tenant_key: IssuedKey
) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "retrying": sample(
            "conveyor_webhook_deliveries_total", kind="endpoint", outcome="retrying"
        ),
        "delivered": sample(
            "conveyor_webhook_deliveries_total", kind="endpoint", outcome="delivered"
        ),
        "refused": sample("conveyor_webhook_deliveries_total", kind="endpoint", outcome="refused"),
        "latency": sample("conveyor_webhook_event_to_delivery_seconds_count", kind="endpoint"),
    }
    # Given an endpoint answering 503 then 200, and a delivery whose name turns private
    replies = iter([Reply(503), Reply(200)])
    with receiver(lambda _: next(replies)) as rx:
        endpoint(hooks, tenant_key.tenant_id, rx.url(host="hooks.example"))
        (job_id,) = emit(hooks, tenant_key.tenant_id)
        # When both tries run, and then a delivery is refused by the address check
        assert run_until_settled(hooks, job_id) == "succeeded"
        (refused,) = emit(hooks, tenant_key.tenant_id)
        assert deliver(refused, hooks, resolver=lambda h, p: ["10.0.0.1"]) == "failed"
    # Then each outcome is counted once, and the delivered one's latency observed
    assert (
        sample("conveyor_webhook_deliveries_total", kind="endpoint", outcome="retrying")
        == before["retrying"] + 1
    )
    assert (
        sample("conveyor_webhook_deliveries_total", kind="endpoint", outcome="delivered")
        == before["delivered"] + 1
    )
    assert (
        sample("conveyor_webhook_deliveries_total", kind="endpoint", outcome="refused")
        == before["refused"] + 1
    )
    assert (
        sample("conveyor_webhook_event_to_delivery_seconds_count", kind="endpoint")
        == before["latency"] + 1
    )
