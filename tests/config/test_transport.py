"""Conveyor's Redis transport on a real Redis: unacked messages restored after the connection
was detached, and list items that are not messages dropped instead of raised."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest
import redis
from kombu import Connection  # type: ignore[attr-defined]

from config.transport import Transport
from tests.conftest import REDIS_URL


@pytest.fixture
def channel() -> Iterator[Any]:
    """A channel of the transport under a key prefix of its own."""
    prefix = f"cvtest-transport-{uuid.uuid4().hex[:8]}:"
    conn = Connection(
        REDIS_URL, transport=Transport, transport_options={"global_keyprefix": prefix}
    )
    chan = conn.channel()
    chan.test_prefix = prefix
    yield chan
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
    conn.release()


def test_unacked_messages_are_restored_after_the_connection_was_detached(channel: Any) -> None:
    # Given a message taken from a queue and not acknowledged
    channel.queue_declare("q")
    channel.basic_publish(channel.prepare_message("job-id"), exchange="", routing_key="q")
    message = channel.basic_get("q", no_ack=False)
    assert message is not None and channel.qos._delivered
    # When the consumer closes after kombu detached the connection and dropped the pool
    # (what a broker connection loss leaves behind)
    channel.connection.client = None
    channel._pool = None
    channel._kept_client = None
    channel.qos.restore_unacked()
    # Then the message is back in its queue instead of "no attribute 'hostname'"
    client = redis.Redis.from_url(REDIS_URL)
    assert client.llen(f"{channel.test_prefix}q") == 1
    client.close()


def test_a_list_item_that_is_not_a_message_is_dropped_on_the_polling_path(channel: Any) -> None:
    # Given a queue holding an item no producer wrote, then a real message
    channel.queue_declare("q")
    client = redis.Redis.from_url(REDIS_URL)
    client.lpush(f"{channel.test_prefix}q", b"garbage")
    channel.basic_publish(channel.prepare_message("job-id"), exchange="", routing_key="q")
    client.close()
    # When a consumer polls the queue
    with pytest.raises(Empty):
        channel._get("q")
    # Then the garbage is gone and the real message comes next
    message = channel.basic_get("q", no_ack=True)
    assert message is not None and message.body == b"job-id"
