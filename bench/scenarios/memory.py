"""memory: RSS of Conveyor's processes, (a) idle vs with 100 k jobs waiting, (b) over a soak.

RSS is VmRSS from /proc summed over a process's tree. Each run starts a fresh stack: worker (the
`data` and `maintenance` queues, threads -c 8), beat (due poll 0.5 s, sweep every 2 s) and API.
(a) Once beat has published a due probe job, the worker is sampled through a phase (the median
of its second half counts); then `--waiting` rows in `retrying`, due in an hour, are inserted
(the broker holds nothing for them: waits live in the DB), and after another phase of beat
polling over them the worker is sampled again. Beat runs through both phases, so they differ by
the rows alone. (b) One client submits no-op jobs back to back for 10 s to measure capacity (jobs
finished per second, API and worker sharing the machine), then at half that pace for
`--soak-s`, sampling API, worker and beat every 5 s: first-minute median against last-minute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import keyspace
from bench.conveyor_stack import Api, api_process, beat_process, worker_process
from bench.conveyor_store import (
    prove_consuming,
    prove_publishing_due,
    state_counts,
    terminal_count,
)
from bench.procs import BenchError, Proc, wait_until
from bench.results import CONVEYOR, ScenarioResult, Target
from bench.runner import Measure, Options, interleave, say
from bench.scenarios.common import Conveyor, conveyor
from bench.scenarios.drain import drain_timeout
from bench.scenarios.e2e_noop import CONCURRENCY, POOL
from bench.scenarios.ingest import single_submits
from bench.scenarios.soak import Sample, flat_out, median_rss, paced, sample_for
from bench.seed import WAITING, seed_jobs
from store.states import TERMINAL_STATES, JobState

NAME = "memory"
DEFAULT_RUNS = 1
DEFAULT_WAITING = 100_000
DEFAULT_SOAK_S = 600.0
PHASE_S = 30.0
PHASE_SAMPLES = 10
CAPACITY_S = 10.0
WINDOW_S = 60.0
SAMPLE_S = 5.0
SLOWEST_PER_S = 20.0
BEAT = {"due_poll_s": "0.5", "sweep_interval_s": "2"}
FLAT = 1.1
UNSUCCESSFUL = [state.value for state in TERMINAL_STATES - {JobState.SUCCEEDED}]
IDLED = ("worker", "beat")
SOAKED = ("api", "worker", "beat")
RSS_METRICS = [f"{name}_rss_{phase}_mib" for name in IDLED for phase in ("idle", "waiting")] + [
    f"{name}_rss_{window}_min_mib" for name in SOAKED for window in ("first", "last")
]
UNITS = {metric: "MiB" for metric in RSS_METRICS} | {
    "capacity_jobs_s": "jobs/s",
    "soak_rate_jobs_s": "jobs/s",
    "soak_submitted": "jobs",
    "soak_finished": "jobs",
}
TARGETS = [
    Target("worker_rss_waiting_mib", CONVEYOR, FLAT, False, baseline_metric="worker_rss_idle_mib"),
    *(
        Target(
            f"{name}_rss_last_min_mib",
            CONVEYOR,
            FLAT,
            False,
            baseline_metric=f"{name}_rss_first_min_mib",
        )
        for name in SOAKED
    ),
]


@dataclass(frozen=True)
class Timing:
    """How long each part of a run lasts; all shrink with a short soak so a smoke run is quick."""

    phase_s: float
    capacity_s: float
    soak_s: float
    window_s: float
    every_s: float

    @classmethod
    def for_soak(cls, soak_s: float) -> Timing:
        """Defaults for a soak of `soak_s`: windows a minute, or a third of a shorter soak."""
        window = min(WINDOW_S, soak_s / 3)
        return cls(
            phase_s=min(PHASE_S, soak_s / 2),
            capacity_s=min(CAPACITY_S, soak_s / 2),
            soak_s=soak_s,
            window_s=window,
            every_s=min(SAMPLE_S, window / 3),
        )


@dataclass(frozen=True)
class Running:
    """One run's stack, up and proven: worker, beat and API on a fresh database."""

    ours: Conveyor
    worker: Proc
    beat: Proc
    api: Api
    submit: Callable[[], None]  # one no-op job through `POST /v1/jobs`


@contextmanager
def running(opts: Options, workdir: Path) -> Iterator[Running]:
    """Start the stack; the worker has run a probe job and beat has published a due one."""
    with ExitStack() as stack:
        conn = keyspace.client()
        stack.callback(conn.close)
        ours = stack.enter_context(conveyor(replace(opts, workdir=workdir), conn, extra=BEAT))
        worker = stack.enter_context(
            worker_process(ours.site, workdir, POOL, CONCURRENCY, "data,maintenance")
        )
        api = stack.enter_context(api_process(ours.site, workdir))  # boots beside the worker
        prove_consuming(ours.settings, ours.db, ours.tenant_id, worker)
        beat = stack.enter_context(beat_process(ours.site, workdir))
        prove_publishing_due(ours.db, ours.tenant_id, beat, worker)
        submit = single_submits(stack.enter_context(ours.http()), api.url)
        yield Running(ours, worker, beat, api, lambda: submit(1))


def _wait_finished(r: Running, target: int, what: str, count: int) -> None:
    wait_until(
        lambda: terminal_count(r.ours.db, r.ours.tenant_id) >= target,
        f"{r.worker.name} to finish {what} ({count} jobs)",
        timeout=drain_timeout(count, SLOWEST_PER_S),
        watch=[r.worker],
    )


def idle_then_waiting(
    r: Running, timing: Timing, waiting: int
) -> tuple[list[Sample], list[Sample], float]:
    """(a): samples idle, then with `waiting` rows due in an hour; and the insert's seconds."""
    procs = {"worker": r.worker, "beat": r.beat}
    every = timing.phase_s / PHASE_SAMPLES
    say(f"{NAME}: worker idle, sampling for {timing.phase_s:.0f}s")
    idle = sample_for(timing.phase_s, every, procs)
    say(f"{NAME}: inserting {waiting:,} jobs waiting to retry")
    seed_s = seed_jobs(r.ours.db, [r.ours.tenant_id], waiting, WAITING)
    say(f"{NAME}: beat polling over them, sampling for {timing.phase_s:.0f}s")
    loaded = sample_for(timing.phase_s, every, procs)
    # Beat still finds a due job among the waiting ones, so it did poll over them.
    prove_publishing_due(r.ours.db, r.ours.tenant_id, r.beat, r.worker)
    return idle, loaded, seed_s


def capacity(r: Running, seconds: float) -> float:
    """Jobs finished per second while one client submits back to back for `seconds`."""
    before = terminal_count(r.ours.db, r.ours.tenant_id)
    submitted, elapsed = flat_out(r.submit, seconds)
    finished = terminal_count(r.ours.db, r.ours.tenant_id) - before
    _wait_finished(r, before + submitted, "the capacity run's jobs", submitted)
    return finished / elapsed


def soak(r: Running, timing: Timing) -> tuple[dict[str, float], list[Sample]]:
    """(b): capacity, then half of it for the soak; figures and the RSS samples."""
    say(f"{NAME}: measuring capacity for {timing.capacity_s:.0f}s")
    rate = capacity(r, timing.capacity_s)
    say(f"{NAME}: soaking at {rate / 2:.0f} jobs/s for {timing.soak_s:.0f}s")
    before = terminal_count(r.ours.db, r.ours.tenant_id)
    procs = {"api": r.api.proc, "worker": r.worker, "beat": r.beat}
    submitted, samples = paced(r.submit, rate / 2, timing.soak_s, timing.every_s, procs)
    finished = terminal_count(r.ours.db, r.ours.tenant_id) - before
    _wait_finished(r, before + submitted, "the soak's jobs", submitted)
    counts = state_counts(r.ours.db, r.ours.tenant_id)
    failed = {state: counts[state] for state in UNSUCCESSFUL if state in counts}
    if failed:
        raise BenchError(f"jobs that did not succeed: {failed}")
    figures = {
        "capacity_jobs_s": rate,
        "soak_rate_jobs_s": submitted / timing.soak_s,
        "soak_submitted": submitted,
        "soak_finished": finished,
    }
    return figures, samples


def measure(opts: Options, timing: Timing, waiting: int, kept: list[dict[str, Any]]) -> Measure:
    """A run on a fresh stack: (a) idle, then waiting rows; (b) capacity, then the soak."""

    def run(index: int) -> dict[str, float]:
        workdir = opts.workdir / f"run-{index + 1}"
        workdir.mkdir()
        with running(opts, workdir) as r:
            idle, loaded, seed_s = idle_then_waiting(r, timing, waiting)
            figures, soaked = soak(r, timing)
        kept.append(
            {
                "run": index + 1,
                "seed_s": seed_s,
                "idle": [asdict(s) for s in idle],
                "waiting": [asdict(s) for s in loaded],
                "soak": [asdict(s) for s in soaked],
            }
        )
        return _figures(timing, idle, loaded, soaked) | figures

    return run


def _figures(
    timing: Timing, idle: list[Sample], loaded: list[Sample], soak: list[Sample]
) -> dict[str, float]:
    half, end = timing.phase_s / 2, float("inf")
    last = timing.soak_s - timing.window_s
    figures = {
        f"{name}_rss_{phase}_mib": median_rss(samples, name, half, end)
        for name in IDLED
        for phase, samples in (("idle", idle), ("waiting", loaded))
    }
    for name in SOAKED:
        figures[f"{name}_rss_first_min_mib"] = median_rss(soak, name, 0, timing.window_s)
        figures[f"{name}_rss_last_min_mib"] = median_rss(soak, name, last, end)
    return figures


def run(opts: Options) -> ScenarioResult:
    """Measure `opts.runs` fresh stacks one after another."""
    waiting = opts.waiting or DEFAULT_WAITING
    timing = Timing.for_soak(opts.soak_s or DEFAULT_SOAK_S)
    kept: list[dict[str, Any]] = []
    series = interleave(NAME, opts.runs, {CONVEYOR: measure(opts, timing, waiting, kept)}, UNITS)
    return ScenarioResult(
        NAME,
        {
            "runs": opts.runs,
            "db": opts.db,
            "waiting": waiting,
            **{key: round(value, 2) for key, value in asdict(timing).items()},
            "worker": f"{POOL} -c {CONCURRENCY}, queues data and maintenance",
        },
        series,
        TARGETS,
        [
            "RSS: VmRSS summed over each process tree; 'first/last_min' are medians over the "
            f"soak's first and last {timing.window_s:.0f}s",
            "beat polls due jobs every 0.5 s and sweeps every 2 s (defaults 1 s and 10 s), "
            "through the idle phase too",
            "capacity: jobs finished per second while one client submits back to back "
            "through the API; the soak submits at half of it",
        ],
        {"samples": kept},
    )
