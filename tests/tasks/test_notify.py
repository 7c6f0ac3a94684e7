"""The end of a job is announced on Redis pub/sub only when a client waits for it."""

from __future__ import annotations

import time

import redis

from config.settings import Settings
from store.db import get_database
from store.jobs import ask_to_notify
from store.keys import IssuedKey
from tasks.executor import execute
from tasks.notify import channel
from tests.tasks.factories import RATES, make_job, with_sandbox


def test_worker_announces_only_the_end_of_a_job_someone_waits_for(
    settings: Settings, tenant_key: IssuedKey, sandbox: str
) -> None:
    # Given two queued jobs, one of which a client has asked to hear the end of
    s = with_sandbox(settings, sandbox)
    unwatched = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    watched = make_job(s, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES)
    ask_to_notify(get_database(s), watched)
    client = redis.Redis.from_url(s.broker_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel(s, unwatched), channel(s, watched))
    try:
        # When a worker runs both to the end
        assert execute(unwatched, s).value == "succeeded"
        assert execute(watched, s).value == "succeeded"
        # Then exactly one notice came, on the watched job's channel
        notices = []
        deadline = time.monotonic() + 1.0  # a notice is sent before execute() returns
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                notices.append((message["channel"].decode(), message["data"].decode()))
    finally:
        pubsub.close()
        client.close()
    assert notices == [(channel(s, watched), "succeeded")]
