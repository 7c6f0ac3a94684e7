"""Queue verdicts from the backlog, the broker and the heartbeats; heartbeat records in Redis."""

from __future__ import annotations

import time

import pytest

from config.settings import Settings
from store.backlog import QueueBacklog
from tasks import heartbeats
from tasks.heartbeats import Heartbeat
from tasks.queue_health import Verdict, assess

NOW = 1_000_000.0
STALL_S = 300.0


def consumer(
    queues: tuple[str, ...], consumed_ago: float | None, started_ago: float = 3600.0
) -> Heartbeat:
    consumed = None if consumed_ago is None else NOW - consumed_ago
    return Heartbeat("w@host:1", queues, NOW - 1, NOW - started_ago, consumed)


def verdict(backlog: QueueBacklog, broker: int, consumers: list[Heartbeat]) -> Verdict:
    found = assess([backlog], {backlog.queue: broker}, consumers, NOW, STALL_S)
    return next(q for q in found if q.queue == backlog.queue).verdict


@pytest.mark.parametrize(
    ("queued", "oldest_s", "broker", "consumers", "expected"),
    [
        # no work: idle, with or without consumers
        (0, 0.0, 0, [], Verdict.IDLE),
        (0, 0.0, 0, [consumer(("data",), None)], Verdict.IDLE),
        # work and nobody consuming this queue (a consumer of another queue does not count)
        (3, 5.0, 3, [], Verdict.NO_CONSUMER),
        (3, 5.0, 3, [consumer(("payments",), 1.0)], Verdict.NO_CONSUMER),
        (0, 0.0, 2, [], Verdict.NO_CONSUMER),  # messages in the broker only
        # work, a live consumer that took a message lately or work that just arrived
        (3, 900.0, 3, [consumer(("data",), 2.0)], Verdict.CONSUMING),
        (1, 0.5, 1, [consumer(("data",), 7200.0)], Verdict.CONSUMING),
        (1, 900.0, 1, [consumer(("data",), None, started_ago=5.0)], Verdict.CONSUMING),
        # work older than the stall bound and a live consumer that took nothing for as long
        (3, 900.0, 3, [consumer(("data",), 600.0)], Verdict.STALLED),
        (3, 900.0, 3, [consumer(("data",), None)], Verdict.STALLED),
    ],
)
def test_a_queue_is_ready_only_when_its_work_has_a_live_consumer_taking_it(
    queued: int, oldest_s: float, broker: int, consumers: list[Heartbeat], expected: Verdict
) -> None:
    # Given a queue's backlog, broker length and the live consumers
    backlog = QueueBacklog("data", queued=queued, oldest_queued_age_s=oldest_s)
    # When it is assessed
    found = verdict(backlog, broker, consumers)
    # Then the verdict follows the table in tasks/queue_health.py
    assert found is expected


def test_every_conveyor_queue_is_assessed_even_without_jobs() -> None:
    # Given no backlog at all and no consumers
    # When the queues are assessed
    found = assess([], {}, [], NOW, STALL_S)
    # Then each of the four queues is listed, idle and ready
    assert [(q.queue, q.verdict, q.ready) for q in found] == [
        ("data", Verdict.IDLE, True),
        ("maintenance", Verdict.IDLE, True),
        ("payments", Verdict.IDLE, True),
        ("webhooks", Verdict.IDLE, True),
    ]


def test_a_heartbeat_lives_for_three_intervals_and_a_clean_stop_removes_it(
    settings: Settings,
) -> None:
    # Given heartbeats written every 0.2 s (so they expire after 0.6 s)
    fast = settings.model_copy(update={"worker_heartbeat_s": 0.2})
    client = heartbeats.redis_client(fast)
    now = time.time()
    try:
        heartbeats.write(client, fast, Heartbeat("a@h:1", ("data",), now, now, now))
        heartbeats.write(client, fast, Heartbeat("b@h:2", ("payments",), now, now))
        # When one stops cleanly, and the other stops writing
        seen = [h.worker for h in heartbeats.live(client, fast)]
        heartbeats.remove(client, fast, "b@h:2")
        after_stop = [h.worker for h in heartbeats.live(client, fast)]
        time.sleep(heartbeats.expiry_s(fast) + 0.3)
        after_expiry = heartbeats.live(client, fast)
    finally:
        client.close()
    # Then both were live, the stopped one vanished at once, the silent one after the expiry
    assert seen == ["a@h:1", "b@h:2"]
    assert after_stop == ["a@h:1"]
    assert after_expiry == []
