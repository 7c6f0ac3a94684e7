"""The Dramatiq baseline: a Redis broker under its own namespace and two actors (import guarded)."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import requests

from bench.keyspace import REDIS_URL

NAMESPACE_ENV = "BENCH_DRAMATIQ_NAMESPACE"
QUEUE = "default"
HTTP_TIMEOUT_S = (3.05, 10.0)

_local = threading.local()


def available() -> bool:
    """Whether dramatiq is installed (`pip install -e '.[bench]'`)."""
    return importlib.util.find_spec("dramatiq") is not None


def _redis() -> redis.Redis:
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


def _finished(counter: str, first_start: str, started: float) -> None:
    client = _redis()
    # The first message's start time: Dramatiq's idle consumer polls with up to 1 s back-off,
    # so the clock starts when it picked the backlog up, not when the backlog was sent.
    client.set(first_start, repr(started), nx=True)
    client.incr(counter)


def noop(counter: str, first_start: str) -> None:
    """Count one finished job."""
    _finished(counter, first_start, time.time())


def fetch(url: str, api_key: str, counter: str, first_start: str) -> None:
    """The same GET the Conveyor job makes, with requests, then count it."""
    started = time.time()
    response = _http().get(
        url,
        params={"base": "EUR"},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=HTTP_TIMEOUT_S,
    )
    response.raise_for_status()
    response.json()
    _finished(counter, first_start, started)


@dataclass(frozen=True)
class Actors:
    """The bench actors bound to one broker."""

    noop: Any
    fetch: Any


def create_broker(namespace: str) -> Any:
    """A Dramatiq Redis broker whose keys all start with `namespace:`."""
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=REDIS_URL, namespace=namespace)


def declare(broker: Any) -> Actors:
    """Register the bench actors on `broker` (Dramatiq's defaults otherwise)."""
    import dramatiq

    return Actors(
        noop=dramatiq.actor(actor_name="bench_noop", broker=broker, max_retries=0)(noop),
        fetch=dramatiq.actor(actor_name="bench_fetch", broker=broker, max_retries=0)(fetch),
    )
