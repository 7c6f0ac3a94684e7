"""Outbound webhooks through real worker and beat processes, to real local receivers.

Figures (printed, and stated in README "Webhooks"): deliveries per second to a local receiver,
p95 event → delivery latency, and how long a slow endpoint of tenant A delays tenant B.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from config.settings import Settings
from integrations.webhooks.secrets import SecretBox, generate_secret
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import Attempt, Job
from store.outbox import NewEvent, subscribers, write_events
from store.types import utcnow
from store.webhook_models import WebhookDelivery
from store.webhooks import create_endpoint
from tasks.publish import producer_app, publish
from tasks.webhooks import delivery_policy, publish_deliveries
from tests.e2e.stack import (
    SHARED_REDIS,
    api_process,
    beat_process,
    kill_group,
    stack_env,
    start_worker,
    worker_process,
)
from tests.support.procs import wait_until
from tests.support.receiver import Reply, receiver
from tests.tasks.factories import make_job

pytestmark = [pytest.mark.e2e]


def endpoint(settings: Settings, tenant_id: uuid.UUID, url: str) -> None:
    with get_database(settings).session() as session:
        create_endpoint(
            session, tenant_id, url, "", [], SecretBox(settings).seal(generate_secret()), utcnow()
        )


def emit(settings: Settings, tenant_id: uuid.UUID, count: int) -> list[tuple[uuid.UUID, str]]:
    """Write `count` events through the outbox and publish their deliveries, as a finish does."""
    events = [NewEvent("job.succeeded", None, {"n": n}) for n in range(count)]
    with get_database(settings).connection() as conn:
        targets = subscribers(conn, tenant_id)
        ids = write_events(conn, tenant_id, events, targets, delivery_policy(settings), utcnow())
    publish_deliveries(settings, ids)
    return ids


def env_for(settings: Settings, sandbox_url: str, **extra: str) -> dict[str, str]:
    return stack_env(
        settings.database_url,
        settings.broker_key_prefix,
        sandbox_url,
        **{
            "outbound_allow_loopback": "true",
            "webhook_backoff_base_s": "0.2",
            "webhook_backoff_cap_s": "1",
            "republish_after_s": "1",
            **extra,
        },
    )


def test_outbox_survives_a_worker_killed_between_finishing_and_delivering(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path
) -> None:
    s = fresh_settings
    env = env_for(s, sandbox_url)
    with receiver() as rx:
        endpoint(s, key.tenant_id, rx.url())
        # Given a worker that runs jobs but not deliveries, and a job it finishes
        worker = start_worker(env, logs_dir, "jobs-only", ["--queues=data"])
        try:
            job_id = make_job(s, key.tenant_id, "data.sandbox.fetch_rates", {"base": "EUR"})
            assert publish(producer_app(s), job_id, "data.sandbox.fetch_rates", "data")
            db = get_database(s)
            broker = redis.Redis.from_url(SHARED_REDIS)
            queue = f"{s.broker_key_prefix}webhooks"

            def delivery_committed_and_published() -> bool:
                with db.session() as session:
                    count = session.scalar(select(func.count()).select_from(WebhookDelivery))
                # The publish comes after the commit: wait for both, so the kill below lands
                # after them whatever the machine's load
                return count == 1 and broker.llen(queue) == 1

            wait_until(
                delivery_committed_and_published,
                "the job's end, its delivery's commit and the delivery's publish",
                timeout=20,
            )
        finally:
            # When the worker is killed before any delivery ran, and its publish is lost too
            kill_group(worker)
        broker.delete(queue)
        assert rx.received == []
        # Then a new worker and beat deliver the event from the outbox, once
        with worker_process(env, logs_dir, "hooks"), beat_process(env, logs_dir):
            wait_until(lambda: len(rx.received) >= 1, "the outbox delivery", timeout=30)
            time.sleep(2)  # room for a duplicate to show up
    assert len(rx.received) == 1
    with get_database(s).session() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert session.get(Job, delivery.job_id).state == "succeeded"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).where(Attempt.job_id == delivery.job_id)) == 1


SLOW_S = 8.0  # tenant A's receiver answers after this long
B_BOUND_S = 5.0  # the stated bound on tenant B's delivery latency behind it


def test_slow_endpoint_of_one_tenant_does_not_hold_back_another(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path
) -> None:
    # Given 4 worker threads, at most 2 per endpoint, and tenant A's receiver taking 8 s
    s = fresh_settings
    env = env_for(s, sandbox_url, worker_concurrency="4", webhook_endpoint_concurrency="2")
    with get_database(s).session() as session:
        other = create_api_key(session, f"b-{uuid.uuid4().hex[:6]}")
    with receiver(lambda _: Reply(200, delay_s=SLOW_S)) as slow, receiver() as fast:
        endpoint(s, key.tenant_id, slow.url())
        endpoint(s, other.tenant_id, fast.url())
        with worker_process(env, logs_dir, "hooks"), beat_process(env, logs_dir):
            # When A has 8 deliveries queued ahead of B's 20
            emit(s, key.tenant_id, 8)
            time.sleep(0.3)
            started = time.monotonic()
            emit(s, other.tenant_id, 20)
            wait_until(lambda: len(fast.received) >= 20, "tenant B's deliveries", timeout=30)
            latencies = sorted(r.at - started for r in fast.received)
    # Then every one of B's deliveries arrived within B_BOUND_S: without the per-endpoint cap
    # A's 8 deliveries would hold all 4 threads and B's first would wait SLOW_S
    p50, worst = statistics.median(latencies), latencies[-1]
    print(f"tenant B behind a slow tenant A: p50 {p50:.2f} s, max {worst:.2f} s")
    assert latencies[-1] < B_BOUND_S
    assert len(slow.received) <= 8


def test_negative_control_without_the_cap_the_slow_endpoint_holds_every_thread(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path
) -> None:
    # Given the same world, but a per-endpoint cap as large as the worker's 4 threads
    s = fresh_settings
    env = env_for(s, sandbox_url, worker_concurrency="4", webhook_endpoint_concurrency="4")
    with get_database(s).session() as session:
        other = create_api_key(session, f"b-{uuid.uuid4().hex[:6]}")
    with receiver(lambda _: Reply(200, delay_s=SLOW_S)) as slow, receiver() as fast:
        endpoint(s, key.tenant_id, slow.url())
        endpoint(s, other.tenant_id, fast.url())
        with worker_process(env, logs_dir, "hooks"), beat_process(env, logs_dir):
            # When A's 4 deliveries are in flight ahead of B's 20
            emit(s, key.tenant_id, 4)
            wait_until(lambda: len(slow.received) >= 4, "A's first 4 deliveries to be sent")
            started = time.monotonic()
            emit(s, other.tenant_id, 20)
            wait_until(lambda: len(fast.received) >= 1, "tenant B's first delivery", timeout=30)
            first = fast.received[0].at - started
    # Then B's first delivery waited for A's receiver: the test above can see a delay
    print(f"without the cap, tenant B's first delivery after {first:.2f} s")
    assert first > B_BOUND_S


def test_delivery_rate_and_latency_to_a_local_receiver(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path
) -> None:
    s = fresh_settings
    env = env_for(s, sandbox_url, republish_after_s="30")
    count = 200
    with receiver() as rx:
        endpoint(s, key.tenant_id, rx.url())
        with worker_process(env, logs_dir, "hooks"), beat_process(env, logs_dir):
            emit(s, key.tenant_id, 5)  # warm up the worker's pools
            wait_until(lambda: len(rx.received) >= 5, "warm-up deliveries", timeout=30)
            rx.received.clear()
            sent_at: dict[str, float] = {}
            with get_database(s).connection() as conn:
                targets = subscribers(conn, key.tenant_id)
            started = time.monotonic()
            for n in range(count):
                with get_database(s).connection() as conn:
                    ids = write_events(
                        conn,
                        key.tenant_id,
                        [NewEvent("job.succeeded", None, {"n": n})],
                        targets,
                        delivery_policy(s),
                        utcnow(),
                    )
                sent_at[str(n)] = time.monotonic()
                publish_deliveries(s, ids)
            wait_until(lambda: len(rx.received) >= count, "every delivery", timeout=60)
            elapsed = max(r.at for r in rx.received) - started
    latencies = sorted(r.at - sent_at[str(json.loads(r.body)["data"]["n"])] for r in rx.received)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    p50 = statistics.median(latencies)
    print(f"{count} deliveries in {elapsed:.2f} s: {count / elapsed:.0f}/s")
    print(f"event -> delivery: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    assert len(rx.received) == count
    # A bound loose enough for a loaded 2-core CI box; the figures printed are the result.
    assert p95 < 15.0


def test_a_job_submitted_with_a_callback_url_is_called_back_signed(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path
) -> None:
    s = fresh_settings
    env = env_for(s, sandbox_url)
    headers = {"Authorization": f"Bearer {key.secret}"}
    with (
        receiver() as rx,
        api_process(env, logs_dir) as api,
        worker_process(env, logs_dir, "all"),
        beat_process(env, logs_dir),
    ):
        # Given the tenant's callback secret, created through the API
        created = requests.post(f"{api}/v1/webhook-callbacks/secret", headers=headers, timeout=10)
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        # When a job is submitted with its own callback URL (and no endpoint exists)
        body = {
            "type": "data.sandbox.fetch_rates",
            "payload": {"base": "EUR"},
            "callback_url": rx.url("/done"),
        }
        submitted = requests.post(f"{api}/v1/jobs", json=body, headers=headers, timeout=10)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        # Then the worker runs it and its terminal event arrives at the URL, once
        wait_until(lambda: len(rx.received) >= 1, "the job's callback", timeout=30)
        time.sleep(1)  # room for a duplicate to show up
        listed = requests.get(
            f"{api}/v1/webhook-callbacks/deliveries",
            params={"job_id": job_id},
            headers=headers,
            timeout=10,
        ).json()
    (got,) = rx.received
    assert got.path == "/done"
    event = Webhook(secret).verify(got.body.decode(), got.headers)
    assert event["type"] == "job.succeeded" and event["data"]["job_id"] == job_id
    assert [(d["state"], d["attempts"]) for d in listed] == [("succeeded", 1)]
