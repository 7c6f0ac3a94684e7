"""The Dramatiq side of a scenario: its worker (CLI defaults), and proof that it consumes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.celery_baseline import read_counter
from bench.dramatiq_app import NAMESPACE_ENV, Actors
from bench.procs import Proc, free_port, python_argv, wait_until

PROBE_TIMEOUT_S = 60.0
SYSTEM = "dramatiq"
NOT_INSTALLED = "dramatiq: not installed"


def keys(namespace: str, name: str) -> tuple[str, str]:
    """The counter and first-start keys of one run."""
    return f"{namespace}:counter:{name}", f"{namespace}:first-start:{name}"


def first_start(conn: redis.Redis, key: str) -> float | None:
    """When the first message of a run started (epoch seconds), if one has."""
    value = conn.get(key)
    return float(value) if value is not None else None


@contextmanager
def dramatiq_worker(namespace: str, logs: Path) -> Iterator[Proc]:
    """`python -m dramatiq bench.dramatiq_worker` with Dramatiq's default processes and threads."""
    name = f"dramatiq-worker-{free_port()}"
    argv = python_argv("-m", "dramatiq", "bench.dramatiq_worker")
    proc = Proc(name, argv, {NAMESPACE_ENV: namespace}, logs)
    try:
        yield proc
    finally:
        proc.stop()


def prove_consuming(actors: Actors, conn: redis.Redis, namespace: str, worker: Proc) -> None:
    """Send one no-op message and wait until a worker has run it."""
    counter, started = keys(namespace, "probe")
    actors.noop.send(counter, started)
    wait_until(
        lambda: read_counter(conn, counter) >= 1,
        f"{worker.name} to run a probe message",
        timeout=PROBE_TIMEOUT_S,
        watch=[worker],
    )
