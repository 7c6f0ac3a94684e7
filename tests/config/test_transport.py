"""The Redis transport keeps one client per connection pool and still delivers every message."""

from __future__ import annotations

import uuid

import redis
from kombu import Connection, Exchange, Queue  # type: ignore[attr-defined]

from config.settings import DEFAULT_BROKER_URL
from config.transport import TRANSPORT


def _connection(prefix: str) -> Connection:
    return Connection(
        DEFAULT_BROKER_URL,
        transport=TRANSPORT,
        transport_options={"global_keyprefix": prefix},
    )


def test_channel_reuses_one_client_until_its_pool_is_replaced(broker_prefix: str) -> None:
    # Given a channel of the transport on the real broker
    with _connection(broker_prefix) as conn:
        channel = conn.default_channel
        # When clients are asked for twice, and again after kombu drops its pool
        first, second = channel._create_client(), channel._create_client()
        channel._pool = None
        third = channel._create_client()
        # Then the first two are one object, and a new pool gets a new client
        assert first is second
        assert third is not first and third.connection_pool is channel.pool


def test_messages_published_and_acked_through_the_kept_client_arrive_once(
    broker_prefix: str,
) -> None:
    # Given a queue on the real broker, under a key prefix of this test's own
    broker_prefix = f"{broker_prefix}{uuid.uuid4().hex[:6]}:"
    queue = Queue("kept", Exchange("kept", type="direct"), routing_key="kept")
    with _connection(broker_prefix) as conn:
        producer = conn.Producer(serializer="json")
        # When three messages are published and consumed with acknowledgement
        for n in range(3):
            producer.publish({"n": n}, exchange="", routing_key="kept", declare=[queue])
        got = []
        simple = conn.SimpleQueue(queue)
        for _ in range(3):
            message = simple.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        simple.close()
    # Then each arrives once, in order, and nothing is left queued or unacked
    raw = redis.Redis.from_url(DEFAULT_BROKER_URL)
    assert got == [0, 1, 2]
    assert raw.llen(f"{broker_prefix}kept") == 0
    assert raw.hlen(f"{broker_prefix}unacked") == 0
