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


def _task_envelope(body: object, *, headers: dict[str, object] | None = None) -> bytes:
    """A kombu envelope of a protocol-2 task message around a JSON body, base64-encoded."""
    import base64
    import json

    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": "data.sandbox.fetch_rates", "id": "x"}
            if headers is None
            else headers,
            "properties": {"body_encoding": "base64", "delivery_tag": "t1"},
        }
    ).encode()


@pytest.mark.parametrize(
    "body",
    [{"a": 1}, [1], [[], {}], [["id"], {}, {}, {}], ["id", {}, {}], [[], [], {}], [[], {}, 5], 7],
    ids=["dict", "one", "two", "four", "args-not-list", "kwargs-not-dict", "embed-int", "int"],
)
def test_a_task_message_whose_body_is_not_args_kwargs_embed_is_dropped(
    body: object, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a task message Celery's strategy would unpack as (args, kwargs, embed) and crash on
    from config.transport import MalformedMessage, _decode_envelope

    # When the transport decodes it, Then it is refused as malformed (dropped, not delivered)
    with pytest.raises(MalformedMessage, match=r"\[args, kwargs, embed\]"):
        _decode_envelope(_task_envelope(body))


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ([["job-id"], {}, {"callbacks": None}], None),  # what our producer writes
        ([["job-id"], {}, None], None),
        ({"a": 1}, {"id": "x"}),  # no task header: a reply, Celery's to judge
    ],
    ids=["task", "task-embed-null", "not-a-task"],
)
def test_well_formed_and_non_task_messages_pass_the_body_check(
    body: object, headers: dict[str, object] | None
) -> None:
    from config.transport import _decode_envelope

    assert _decode_envelope(_task_envelope(body, headers=headers))["headers"]


def test_a_task_message_of_another_shape_is_dropped_on_the_polling_path(channel: Any) -> None:
    # Given a task message with a body of another shape, then a real message
    channel.queue_declare("q")
    client = redis.Redis.from_url(REDIS_URL)
    client.lpush(f"{channel.test_prefix}q", _task_envelope({"a": 1}))
    channel.basic_publish(channel.prepare_message("job-id"), exchange="", routing_key="q")
    client.close()
    # When a consumer polls, Then the odd one is dropped and the real message comes next
    with pytest.raises(Empty):
        channel._get("q")
    message = channel.basic_get("q", no_ack=True)
    assert message is not None and message.body == b"job-id"
