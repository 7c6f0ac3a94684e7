"""The raw-Celery baseline app (`celery -A bench.raw_celery worker`): bare tasks, our delivery.

Configured from the environment so the worker process and the benchmark agree: its own Redis key
prefix (BENCH_CELERY_PREFIX) and, for the latency scenario only, a Redis result backend
(BENCH_CELERY_RESULTS=1). Delivery matches Conveyor's: JSON, acks_late, reject on worker lost,
prefetch 1.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
import requests
from celery import Celery

from bench.keyspace import REDIS_URL

PREFIX_ENV = "BENCH_CELERY_PREFIX"
RESULTS_ENV = "BENCH_CELERY_RESULTS"
QUEUE = "bench"
NOOP_TASK = "bench.raw.noop"
FETCH_TASK = "bench.raw.fetch"
ECHO_TASK = "bench.raw.echo"
HTTP_TIMEOUT_S = (3.05, 10.0)

_local = threading.local()


def _redis() -> redis.Redis:
    # One client per process; redis-py's pool is thread-safe, and a forked child builds its own.
    client: redis.Redis | None = getattr(_local, "redis", None)
    if client is None or getattr(_local, "pid", None) != os.getpid():
        client = _local.redis = redis.Redis.from_url(REDIS_URL)
        _local.pid = os.getpid()
    return client


def _http() -> requests.Session:
    session: requests.Session | None = getattr(_local, "http", None)
    if session is None:
        session = _local.http = requests.Session()
    return session


def noop(counter: str) -> None:
    """Count one finished job; the benchmark waits for the counter."""
    _redis().incr(counter)


def fetch(url: str, api_key: str, counter: str) -> None:
    """The same GET the Conveyor job makes, with requests, then count it."""
    response = _http().get(
        url,
        params={"base": "EUR"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=HTTP_TIMEOUT_S,
    )
    response.raise_for_status()
    response.json()
    _redis().incr(counter)


def echo() -> dict[str, Any]:
    """Return at once; the latency scenario waits for the result (and checks it came back)."""
    return {"ok": True}


def create_app(prefix: str, results: bool = False) -> Celery:
    """A Celery app on the shared Redis under `prefix`, with the three bench tasks."""
    app = Celery("bench-raw", set_as_current=False)
    app.conf.update(
        broker_url=REDIS_URL,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend=REDIS_URL if results else None,
        result_backend_transport_options={"global_keyprefix": prefix},
        task_ignore_result=not results,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    # Not shared: a shared task would be registered on every app with the first app's options.
    app.task(name=NOOP_TASK, shared=False)(noop)
    app.task(name=FETCH_TASK, shared=False)(fetch)
    app.task(name=ECHO_TASK, shared=False, ignore_result=not results)(echo)
    return app


app = create_app(os.environ.get(PREFIX_ENV, "bench-raw:"), os.environ.get(RESULTS_ENV) == "1")
