"""Draining a backlog of N jobs: the clock runs from handing it over until all N are done.

Staging is untimed: Conveyor's rows are committed and their ids published to a holding queue;
raw Celery's messages likewise. The warm worker, blocked in BRPOP on its queue, sees the whole
backlog at once. The poll (every 50 ms) counts Conveyor's terminal rows, or raw Celery's Redis
counter. CPU is the worker's process tree over the same span.

Dramatiq is not staged: its messages are sent while its worker runs, and its clock starts at the
first message it picks up, since its idle consumer polls with up to 1 s back-off that would
otherwise count against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery import Celery

from bench import keyspace
from bench.celery_baseline import counter_key, read_counter
from bench.conveyor_store import insert_jobs, publish_ids, state_counts, terminal_count
from bench.cpu import tree_cpu_s
from bench.dramatiq_baseline import first_start, keys
from bench.procs import BenchError, Proc, wait_until
from bench.raw_celery import QUEUE
from bench.runner import Measure
from bench.scenarios.common import Conveyor

HOLD = "bench-hold"
MIN_TIMEOUT_S = 60.0


def drain_timeout(n: int, slowest_per_s: float) -> float:
    """A deadline for N jobs that only a broken system misses."""
    return max(MIN_TIMEOUT_S, n / slowest_per_s)


def _figures(n: int, seconds: float, cpu_s: float) -> dict[str, float]:
    return {"throughput": n / seconds, "cpu_ms_per_job": cpu_s * 1000 / n}


def conveyor_drain(
    ours: Conveyor,
    conn: redis.Redis,
    workers: Sequence[Proc],
    n: int,
    job: tuple[str, dict[str, Any]],
    timeout: float,
) -> Measure:
    """A run: N jobs of `job` (type, payload) staged, released, and waited for in the DB.

    CPU per job is the sum over every worker process.
    """
    job_type, payload = job
    names = ", ".join(w.name for w in workers)

    def cpu_s() -> float:
        return sum(tree_cpu_s(w.pid) for w in workers)

    def measure(_run: int) -> dict[str, float]:
        ids = insert_jobs(ours.db, ours.tenant_id, job_type, payload, n)
        publish_ids(ours.settings, ids, job_type, HOLD)
        target = terminal_count(ours.db, ours.tenant_id) + n
        cpu = cpu_s()
        started = time.monotonic()
        keyspace.release(conn, ours.site.prefix, HOLD, "data")
        done = wait_until(
            lambda: terminal_count(ours.db, ours.tenant_id) >= target,
            f"{names} to finish {n} {job_type} jobs",
            timeout=timeout,
            watch=workers,
        )
        cpu = cpu_s() - cpu
        counts = state_counts(ours.db, ours.tenant_id)
        unfinished = {k: v for k, v in counts.items() if k != "succeeded"}
        if unfinished:
            raise BenchError(f"jobs that did not succeed: {unfinished}")
        return _figures(n, done - started, cpu)

    return measure


def celery_drain(
    app: Celery,
    conn: redis.Redis,
    prefix: str,
    worker: Proc,
    n: int,
    task: tuple[str, Callable[[str], list[Any]]],
    timeout: float,
) -> Measure:
    """A run: N raw tasks (name, args for a counter key) staged, released, and counted."""
    task_name, args_for = task

    def measure(run: int) -> dict[str, float]:
        key = counter_key(prefix, f"run-{run}")
        sender = app.tasks[task_name]
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                sender.apply_async(args=args_for(key), queue=HOLD, producer=producer)
        cpu = tree_cpu_s(worker.pid)
        started = time.monotonic()
        keyspace.release(conn, prefix, HOLD, QUEUE)
        done = wait_until(
            lambda: read_counter(conn, key) >= n,
            f"{worker.name} to finish {n} {task_name} tasks",
            timeout=timeout,
            watch=[worker],
        )
        return _figures(n, done - started, tree_cpu_s(worker.pid) - cpu)

    return measure


def dramatiq_drain(
    send: Callable[[str, str], None],
    conn: redis.Redis,
    namespace: str,
    worker: Proc,
    n: int,
    timeout: float,
) -> Measure:
    """A run: N messages sent by `send(counter, first_start_key)`, timed from the first pick-up."""

    def measure(run: int) -> dict[str, float]:
        counter, started_key = keys(namespace, f"run-{run}")
        cpu = tree_cpu_s(worker.pid)
        sent_wall, sent = time.time(), time.monotonic()
        for _ in range(n):
            send(counter, started_key)
        done = wait_until(
            lambda: read_counter(conn, counter) >= n,
            f"{worker.name} to finish {n} messages",
            timeout=timeout,
            watch=[worker],
        )
        picked_up = first_start(conn, started_key) or sent_wall
        elapsed = (done - sent) - max(0.0, picked_up - sent_wall)
        return _figures(n, elapsed, tree_cpu_s(worker.pid) - cpu)

    return measure
