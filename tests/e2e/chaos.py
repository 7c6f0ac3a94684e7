"""Kill workers while hundreds of jobs are in flight, then see what became of every job."""

from __future__ import annotations

import random
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from config.settings import Settings
from store.keys import IssuedKey
from store.states import TERMINAL_STATES
from tasks.publish import producer_app, publish
from tests.e2e.invariants import Report, check_invariants
from tests.e2e.stack import beat_process, kill_group, start_worker
from tests.support.procs import Proc
from tests.tasks.factories import CHARGE, load, make_job

PREFORK = ("--pool=prefork", "--concurrency=4")


@dataclass
class ChaosResult:
    """How many were killed and what the invariant check found."""

    jobs: int
    child_kills: int
    main_kills: int
    report: Report
    seconds: float


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (the prefork pool's children)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in out.stdout.split()]


def submit_charges(settings: Settings, key: IssuedKey, count: int) -> list[uuid.UUID]:
    """Commit `count` charges and publish each id, as the API does."""
    app = producer_app(settings)
    ids = []
    for n in range(count):
        payload = {**CHARGE, "amount": 100 + n}
        job_id = make_job(settings, key.tenant_id, "payments.sandbox.charge", payload, 5)
        assert publish(app, job_id, "payments.sandbox.charge", "payments")
        ids.append(job_id)
    return ids


def _all_terminal(settings: Settings, ids: list[uuid.UUID]) -> bool:
    return all(load(settings, job_id).state in TERMINAL_STATES for job_id in ids)


def run_chaos(
    settings: Settings,
    env: dict[str, str],
    key: IssuedKey,
    sandbox: str,
    logs: Path,
    *,
    jobs: int,
    kills: int,
    with_beat: bool,
    settle_s: float,
) -> ChaosResult:
    """Submit charges, SIGKILL pool children and the worker itself `kills` times, then settle."""
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [], "latency_ms": 200}, timeout=5
    ).raise_for_status()
    rng = random.Random(7)
    started = time.monotonic()
    child_kills = main_kills = 0
    with ExitStack() as stack:
        if with_beat:
            stack.enter_context(beat_process(env, logs))
        worker: Proc = start_worker(env, logs, "chaos", PREFORK)
        stack.callback(lambda: worker.stop())
        ids = submit_charges(settings, key, jobs)
        for n in range(kills):
            time.sleep(0.6)
            if n % 4 == 3:
                kill_group(worker)
                main_kills += 1
                worker = start_worker(env, logs, "chaos", PREFORK)
            else:
                pids = children_of(worker.pid)
                if pids:
                    subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(rng.choice(pids))])
                    child_kills += 1
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not _all_terminal(settings, ids):
            time.sleep(0.5)
    report = check_invariants(settings, ids, sandbox)
    return ChaosResult(jobs, child_kills, main_kills, report, time.monotonic() - started)


def describe(result: ChaosResult) -> str:
    """One line of figures for the log and the closing note."""
    r = result.report
    return (
        f"jobs={result.jobs} child_kills={result.child_kills} main_kills={result.main_kills} "
        f"lost={len(r.lost)} duplicated={len(r.duplicated)} states={dict(r.states)} "
        f"seconds={result.seconds:.1f}"
    )
