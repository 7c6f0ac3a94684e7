"""Per-key request rates (shared by every API instance), concurrent waits, and open-job quotas."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from api.ratelimit import RequestRateLimiter
from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey, revoke_key
from store.models import ApiKey, Job
from tests.api.conftest import audit_rows, auth, dead_job, error_of, job_rows, rates_job
from tests.conftest import REDIS_URL


def app_client(settings: Settings, **overrides: Any) -> TestClient:
    """A client of a fresh API instance on these settings with `overrides`."""
    return TestClient(create_app(settings.model_copy(update=overrides)))


@pytest.fixture
def limited(settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two API instances sharing one Redis: bursts of 5 per key, then one request per 5 s."""
    with (
        app_client(settings, api_rate_limit_per_s=0.2, api_rate_burst=5) as first,
        app_client(settings, api_rate_limit_per_s=0.2, api_rate_burst=5) as second,
    ):
        yield first, second


def test_a_key_over_its_rate_gets_429_with_retry_after_and_nothing_is_written(
    limited: tuple[TestClient, TestClient], settings: Settings, tenant_key: IssuedKey
) -> None:
    client, _ = limited
    # Given a key that used its burst of 5 reads
    for _ in range(5):
        assert client.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200
    # When it submits a job at once
    response = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
    # Then it is 429 rate_limited with a Retry-After, and no job was written
    error_of(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert job_rows(settings) == []


def test_every_api_instance_spends_the_same_budget_per_key(
    limited: tuple[TestClient, TestClient], tenant_key: IssuedKey
) -> None:
    first, second = limited
    # Given 3 requests on one instance
    for _ in range(3):
        assert first.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200
    # When the same key calls another instance 3 more times
    answers = [second.get("/v1/jobs", headers=auth(tenant_key)).status_code for _ in range(3)]
    # Then only 2 fit the shared burst of 5
    assert answers == [200, 200, 429]


def test_one_key_over_its_rate_does_not_limit_another_tenant(
    limited: tuple[TestClient, TestClient], tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    client, _ = limited
    # Given a key limited after its burst
    statuses = [client.get("/v1/jobs", headers=auth(tenant_key)).status_code for _ in range(8)]
    assert statuses[-1] == 429
    # When another tenant's key calls
    response = client.get("/v1/jobs", headers=auth(other_tenant_key))
    # Then it is served
    assert response.status_code == 200


def test_the_budget_refills_at_the_configured_rate(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    with app_client(settings, api_rate_limit_per_s=1, api_rate_burst=2) as client:
        # Given a key that spent its burst (1 request a second)
        while client.get("/v1/jobs", headers=auth(tenant_key)).status_code != 429:
            pass
        # When it waits a bit more than one emission interval
        time.sleep(1.2)
        # Then one request fits again, and the next does not
        assert client.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200
        assert client.get("/v1/jobs", headers=auth(tenant_key)).status_code == 429


def finish_all(settings: Settings) -> None:
    """Mark every job succeeded, as workers would."""
    with get_database(settings).session() as session:
        session.execute(update(Job).values(state="succeeded"))


def test_a_tenant_at_its_open_job_quota_gets_429_and_nothing_is_written(
    settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    with app_client(settings, api_open_jobs_per_tenant=3) as client:
        # Given a tenant with 3 unfinished jobs, its quota
        for _ in range(3):
            response = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
            assert response.status_code == 202, response.text
        # When it submits one more, and a batch of one
        one = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        many = client.post("/v1/jobs/batch", json={"jobs": [rates_job()]}, headers=auth(tenant_key))
        # Then both are 429 quota_exceeded with a Retry-After, and nothing more was written
        assert error_of(one, 429, "quota_exceeded")["details"]["limit"] == 3
        error_of(many, 429, "quota_exceeded")
        assert "Retry-After" in one.headers
        assert len(job_rows(settings)) == 3
        # And another tenant is not held back by it
        other = client.post("/v1/jobs", json=rates_job(), headers=auth(other_tenant_key))
        assert other.status_code == 202


def test_a_batch_that_would_cross_the_quota_is_refused_whole(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    with app_client(settings, api_open_jobs_per_tenant=3) as client:
        # Given a tenant with 2 unfinished jobs of 3 allowed
        for _ in range(2):
            client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        # When it submits a batch of 2
        response = client.post(
            "/v1/jobs/batch", json={"jobs": [rates_job(), rates_job()]}, headers=auth(tenant_key)
        )
        # Then the whole batch is refused and nothing of it was written
        error_of(response, 429, "quota_exceeded")
        assert len(job_rows(settings)) == 2


def test_finished_jobs_free_the_quota_at_once(settings: Settings, tenant_key: IssuedKey) -> None:
    with app_client(settings, api_open_jobs_per_tenant=2) as client:
        # Given a tenant at its quota
        for _ in range(2):
            client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        assert (
            client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).status_code == 429
        )
        # When its jobs finish
        finish_all(settings)
        # Then the next submit is accepted (decided on a fresh count)
        response = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        assert response.status_code == 202, response.text


def test_a_key_holding_its_cap_of_waits_gets_429_too_many_waits(
    settings: Settings, tenant_key: IssuedKey, other_tenant_key: IssuedKey
) -> None:
    with app_client(settings, api_waits_per_key=2) as client:
        # Given a queued job nobody runs, and two requests of one key waiting on it
        job_id = client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key)).json()["id"]
        results: list[int] = []

        def wait() -> None:
            response = client.get(f"/v1/jobs/{job_id}?wait=3", headers=auth(tenant_key))
            results.append(response.status_code)

        waiters = [threading.Thread(target=wait) for _ in range(2)]
        for thread in waiters:
            thread.start()
        time.sleep(1.0)
        # When the same key asks for a third wait, and reads without waiting
        third = client.get(f"/v1/jobs/{job_id}?wait=3", headers=auth(tenant_key))
        plain = client.get(f"/v1/jobs/{job_id}", headers=auth(tenant_key))
        # Then the third wait is 429 too_many_waits with a Retry-After; the plain read is served
        error_of(third, 429, "too_many_waits")
        assert third.headers["Retry-After"] == "1"
        assert plain.status_code == 200
        # And another tenant may still wait
        other_job = client.post("/v1/jobs", json=rates_job(), headers=auth(other_tenant_key))
        other = client.get(
            f"/v1/jobs/{other_job.json()['id']}?wait=0.2", headers=auth(other_tenant_key)
        )
        assert other.status_code == 200
        for thread in waiters:
            thread.join(timeout=10)
        # And the two waits ran their course and freed their slots
        assert results == [200, 200]
        again = client.get(f"/v1/jobs/{job_id}?wait=0.1", headers=auth(tenant_key))
        assert again.status_code == 200
        assert uuid.UUID(again.json()["id"])


def test_with_the_limiter_redis_down_requests_pass_and_pay_no_timeout_each(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an API whose rate-limit Redis refuses connections, with a tiny rate
    dead = {"guard_redis_url": "redis://127.0.0.1:1/0", "api_rate_limit_per_s": 0.2}
    with app_client(settings, api_rate_burst=1, **dead) as client:
        # When a key sends ten reads in a row
        began = time.monotonic()
        statuses = [client.get("/v1/jobs", headers=auth(tenant_key)).status_code for _ in range(10)]
        took = time.monotonic() - began
    # Then all are served (the limiter stands aside) and the outage cost at most one short wait
    assert statuses == [200] * 10
    assert took < 3.0


def test_retry_and_replay_count_against_the_open_job_quota_and_re_queue_nothing_beyond_it(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    with app_client(settings, api_open_jobs_per_tenant=2) as client:
        # Given three dead jobs and one queued job of a tenant allowed 2 unfinished jobs
        dead = [dead_job(client, settings, tenant_key) for _ in range(3)]
        client.post("/v1/jobs", json=rates_job(), headers=auth(tenant_key))
        # When it replays all dead jobs (3 more would make 4 of 2)
        replay = client.post(
            "/v1/jobs/replay",
            json={"filter": {"states": ["dead"]}, "dry_run": False},
            headers=auth(tenant_key),
        )
        # Then the replay is refused whole, and no dead job was re-queued or audited
        error_of(replay, 429, "quota_exceeded")
        assert states_of(settings, dead) == ["dead", "dead", "dead"]
        assert audit_rows(settings) == []
        # When it retries one (2 of 2), then another (3 of 2)
        first = client.post(f"/v1/jobs/{dead[0]}/retry", headers=auth(tenant_key))
        second = client.post(f"/v1/jobs/{dead[1]}/retry", headers=auth(tenant_key))
        # Then the first is re-queued and the second refused, still dead
        assert first.status_code == 202, first.text
        error_of(second, 429, "quota_exceeded")
        assert states_of(settings, dead) == ["queued", "dead", "dead"]
        # And a dry run is still answered (it re-queues nothing)
        dry = client.post(
            "/v1/jobs/replay",
            json={"filter": {"states": ["dead"]}, "dry_run": True},
            headers=auth(tenant_key),
        )
        assert dry.status_code == 200 and dry.json()["matched"] == 2


def states_of(settings: Settings, job_ids: list[str]) -> list[str]:
    """The jobs' states, in the order of `job_ids`."""
    with get_database(settings).session() as session:
        rows = session.execute(
            select(Job.id, Job.state).where(Job.id.in_(map(uuid.UUID, job_ids)))
        ).all()
    found = {row.id: row.state for row in rows}
    return [str(found[uuid.UUID(i)]) for i in job_ids]


def guess() -> dict[str, str]:
    """An Authorization header with a key nobody has."""
    return {"Authorization": f"Bearer cvk_{uuid.uuid4().hex}"}


def guessing_app(settings: Settings) -> Any:
    """An API whose addresses may fail authentication 3 times, then once per 10 s."""
    return create_app(
        settings.model_copy(update={"api_auth_failures_per_s": 0.1, "api_auth_failure_burst": 3})
    )


def test_an_address_guessing_keys_gets_429_and_another_address_is_not_held_back(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    app = guessing_app(settings)
    with (
        TestClient(app, client=("203.0.113.7", 1000)) as guesser,
        TestClient(app, client=("198.51.100.9", 1000)) as other,
    ):
        # Given an address whose three guessed keys were refused (its budget of failures)
        for _ in range(3):
            error_of(guesser.get("/v1/jobs", headers=guess()), 401, "unauthorized")
        # When it guesses again, and when it sends no key at all
        again = guesser.get("/v1/jobs", headers=guess())
        bare = guesser.get("/v1/jobs")
        health = guesser.get("/healthz", headers=guess())
        # Then a guess is refused before any lookup, with a Retry-After; what needs no key, or
        # presents none, is answered as ever (it costs no lookup)
        error_of(again, 429, "too_many_auth_failures")
        assert int(again.headers["Retry-After"]) >= 1
        error_of(bare, 401, "unauthorized")
        assert health.status_code == 200
        # And another address still gets its own answers: 401 for a bad key, 200 for a good one
        error_of(other.get("/v1/jobs", headers=guess()), 401, "unauthorized")
        assert other.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200


def test_guesses_sent_at_once_are_held_to_the_burst(settings: Settings) -> None:
    with TestClient(guessing_app(settings), client=("203.0.113.8", 1000)) as guesser:
        # When one address sends 20 guesses at once
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda _: guesser.get("/v1/jobs", headers=guess()), range(20)))
        # Then at most the burst of them was looked up (401); the rest are 429
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(401) <= 3 and statuses.count(429) >= 17, statuses


def test_a_key_known_good_works_from_an_address_over_its_budget(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    with TestClient(guessing_app(settings), client=("203.0.113.9", 1000)) as client:
        # Given a key that authenticated from an address, which then spent its budget guessing
        assert client.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200
        for _ in range(4):
            client.get("/v1/jobs", headers=guess())
        error_of(client.get("/v1/jobs", headers=guess()), 429, "too_many_auth_failures")
        # When the good key is used again, past the key cache's second
        time.sleep(1.1)
        response = client.get("/v1/jobs", headers=auth(tenant_key))
        # Then it is looked up and answered, not held back with the guesses
        assert response.status_code == 200, response.text


def test_guesses_are_held_to_the_burst_while_redis_cannot_answer(settings: Settings) -> None:
    # Given an API whose Redis for limits refuses connections
    app = create_app(
        settings.model_copy(
            update={
                "api_auth_failures_per_s": 0.1,
                "api_auth_failure_burst": 3,
                "guard_redis_url": "redis://127.0.0.1:1/0",
            }
        )
    )
    with TestClient(app, client=("203.0.113.10", 1000)) as guesser:
        # When one address guesses six keys
        statuses = [guesser.get("/v1/jobs", headers=guess()).status_code for _ in range(6)]
    # Then this instance still holds it to the burst, in its own memory
    assert statuses == [401, 401, 401, 429, 429, 429]


def test_a_revoked_key_once_known_good_counts_as_a_failure(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    with TestClient(guessing_app(settings), client=("203.0.113.11", 1000)) as client:
        # Given a key that authenticated from an address, then was revoked
        assert client.get("/v1/jobs", headers=auth(tenant_key)).status_code == 200
        with get_database(settings).session() as session:
            row = session.get(ApiKey, tenant_key.key_id)
            assert row is not None and revoke_key(session, row, "test")
        time.sleep(1.1)  # past the key cache
        # When it is presented again and again
        statuses = [client.get("/v1/jobs", headers=auth(tenant_key)).status_code for _ in range(4)]
    # Then each refusal is charged like a guess: three 401s spend the budget, then 429
    assert statuses == [401, 401, 401, 429]


def test_a_new_keys_first_burst_is_one_lookup_not_a_run_of_failures(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # When a client sends 30 requests at once with a key this instance has not seen
    with (
        TestClient(guessing_app(settings), client=("203.0.113.12", 1000)) as client,
        ThreadPoolExecutor(max_workers=30) as pool,
    ):
        answers = list(
            pool.map(lambda _: client.get("/v1/jobs", headers=auth(tenant_key)), range(30))
        )
    # Then all are answered: they shared one lookup, not 30 charges against a burst of 3
    assert sorted(a.status_code for a in answers) == [200] * 30


def test_a_local_budget_keeps_what_it_counted_when_redis_stops_answering() -> None:
    # Given an auth budget of 3 that counted three failures while Redis answered
    limiter = RequestRateLimiter(
        f"cvtest-{uuid.uuid4().hex[:8]}:", 0.1, 3, kind="auth-failures", local_fallback=True
    )

    async def scenario() -> tuple[list[bool], bool]:
        up = aioredis.Redis.from_url(REDIS_URL)
        down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            counted = [(await limiter.hit(up, "198.51.100.1")).admitted for _ in range(3)]
            # When Redis stops answering and the same address fails again
            again = await limiter.hit(down, "198.51.100.1")
        finally:
            await up.aclose()
            await down.aclose()
        return counted, again.admitted

    counted, admitted = asyncio.run(scenario())
    # Then this instance still refuses it: no fresh burst from an outage
    assert counted == [True, True, True]
    assert not admitted
