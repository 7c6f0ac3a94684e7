"""Start-up objects are frozen out of the collector's way once a process has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_api_startup_freezes_the_heap(unfrozen: None, settings: Settings) -> None:
    # Given a process whose heap is not frozen
    assert gc.get_freeze_count() == 0
    # When the API starts (its lifespan runs)
    with TestClient(create_app(settings)) as client:
        frozen = gc.get_freeze_count()
        answer = client.get("/healthz")
    # Then the objects alive at start-up are frozen, and the API still answers
    assert frozen > 10_000
    assert answer.status_code == 200


def test_worker_ready_freezes_the_heap(unfrozen: None) -> None:
    # Given a process whose heap is not frozen
    from celery.signals import worker_ready

    import workers.signals  # noqa: F401  (connects the handlers)

    # When Celery announces the worker is ready
    worker_ready.send(sender=None)
    # Then the start-up objects are frozen
    assert gc.get_freeze_count() > 10_000
