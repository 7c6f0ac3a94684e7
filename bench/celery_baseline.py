"""The raw-Celery side of a scenario: its worker process, counters, and proof that it consumes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from celery import Celery

from bench.procs import Proc, free_port, python_argv, wait_until
from bench.raw_celery import NOOP_TASK, PREFIX_ENV, QUEUE, RESULTS_ENV

PROBE_TIMEOUT_S = 60.0
SYSTEM = "raw-celery"


def counter_key(prefix: str, name: str) -> str:
    """A Redis counter the raw tasks INCR, under the run's prefix."""
    return f"{prefix}counter:{name}"


def read_counter(conn: redis.Redis, key: str) -> int:
    """The counter's value, 0 before the first INCR."""
    value = conn.get(key)
    return int(value) if value is not None else 0


@contextmanager
def raw_worker(
    prefix: str, logs: Path, pool: str, concurrency: int, results: bool = False
) -> Iterator[Proc]:
    """`celery -A bench.raw_celery worker` with the given pool, prefetch 1 and late acks."""
    name = f"raw-celery-worker-{free_port()}"
    argv = python_argv(
        "-m",
        "celery",
        "-A",
        "bench.raw_celery",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={QUEUE}",
        f"--hostname={name}@%h",
        "--loglevel=WARNING",
    )
    env = {PREFIX_ENV: prefix, RESULTS_ENV: "1" if results else "0"}
    proc = Proc(name, argv, env, logs)
    try:
        yield proc
    finally:
        proc.stop()


def prove_consuming(app: Celery, conn: redis.Redis, prefix: str, worker: Proc) -> None:
    """Send one no-op task and wait until the worker has run it."""
    key = counter_key(prefix, "probe")
    app.send_task(NOOP_TASK, args=[key], queue=QUEUE)
    wait_until(
        lambda: read_counter(conn, key) >= 1,
        f"{worker.name} to run a probe task",
        timeout=PROBE_TIMEOUT_S,
        watch=[worker],
    )
