"""Publishing many job ids: pipelined, every id delivered once, all-or-flagged on failure."""

from __future__ import annotations

import uuid

from config.settings import Settings
from tasks.publish import PIPELINE_MAX, producer_app, publish_many
from tests.conftest import make_settings
from tests.support.broker import queued_job_ids

TASK = "data.sandbox.fetch_rates"


def test_publish_many_delivers_every_id_once_across_pipeline_flushes(settings: Settings) -> None:
    # Given more job ids than one pipelined round trip carries
    ids = [uuid.uuid4() for _ in range(PIPELINE_MAX * 2 + 7)]
    # When they are published together
    failed = publish_many(producer_app(settings), [(i, TASK, "data") for i in ids])
    # Then none failed and the queue holds each id exactly once, in publish order
    assert failed == []
    queued = queued_job_ids(settings, "data")
    assert sorted(queued) == sorted(str(i) for i in ids)
    assert list(reversed(queued)) == [str(i) for i in ids]


def test_publish_many_to_an_unreachable_broker_reports_every_id(settings: Settings) -> None:
    # Given a producer whose broker does not answer
    down = make_settings(
        settings.database_url, settings.broker_key_prefix, broker_url="redis://127.0.0.1:1/0"
    )
    ids = [uuid.uuid4() for _ in range(3)]
    # When ids are published
    failed = publish_many(producer_app(down), [(i, TASK, "data") for i in ids])
    # Then every one is reported as not published (their rows go to the sweeper)
    assert failed == ids
