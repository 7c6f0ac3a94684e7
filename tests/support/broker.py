"""Reading what sits in the broker: kombu's Redis lists under this run's key prefix."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from config.settings import Settings


def queued_messages(client: redis.Redis, settings: Settings, queue: str) -> list[dict[str, Any]]:
    """Every message waiting in a queue's kombu list, with its body decoded."""
    messages = []
    for raw in client.lrange(f"{settings.broker_key_prefix}{queue}", 0, -1):
        envelope = json.loads(raw)
        assert envelope["properties"]["body_encoding"] == "base64"
        envelope["decoded_body"] = json.loads(base64.b64decode(envelope["body"]))
        messages.append(envelope)
    return messages


def queued_job_ids(settings: Settings, queue: str) -> list[str]:
    """The job ids published to `queue` and not consumed yet, oldest last."""
    client = redis.Redis.from_url(settings.broker_url)
    try:
        return [m["decoded_body"][0][0] for m in queued_messages(client, settings, queue)]
    finally:
        client.close()


def purge(settings: Settings, *queues: str) -> None:
    """Empty queues of this run's prefix."""
    client = redis.Redis.from_url(settings.broker_url)
    try:
        for queue in queues:
            client.delete(f"{settings.broker_key_prefix}{queue}")
    finally:
        client.close()
