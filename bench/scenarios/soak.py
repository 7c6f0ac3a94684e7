"""Load from one client, flat out or at a pace, with RSS samples of processes along the way."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.procs import BenchError, Proc
from bench.rss import tree_rss_mib

# A client that fell behind its pace catches up by at most this much, not in one burst.
MAX_LAG_S = 1.0


@dataclass(frozen=True)
class Sample:
    """RSS in MiB of each named process tree, `t` seconds into a phase."""

    t: float
    rss_mib: dict[str, float]


def sample(procs: Mapping[str, Proc], t: float) -> Sample:
    """RSS of every process tree now; fails at once if one of them has exited."""
    for proc in procs.values():
        proc.check_alive()
    return Sample(round(t, 2), {name: tree_rss_mib(proc.pid) for name, proc in procs.items()})


def sample_for(seconds: float, every: float, procs: Mapping[str, Proc]) -> list[Sample]:
    """Sample every `every` seconds for `seconds`, doing nothing else."""
    samples: list[Sample] = []
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        samples.append(sample(procs, elapsed))
        if elapsed >= seconds:
            return samples
        time.sleep(min(every, seconds - elapsed))


def flat_out(submit: Callable[[], None], seconds: float) -> tuple[int, float]:
    """Submit back to back for `seconds`: (jobs submitted, seconds taken)."""
    submitted = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        submit()
        submitted += 1
    return submitted, time.monotonic() - started


def paced(
    submit: Callable[[], None],
    rate: float,
    seconds: float,
    every: float,
    procs: Mapping[str, Proc],
) -> tuple[int, list[Sample]]:
    """Submit `rate` jobs a second for `seconds`, sampling RSS every `every` seconds in between.

    Returns the jobs submitted and the samples; the last sample is taken at the end.
    """
    if rate <= 0:
        raise BenchError(f"cannot pace a client at {rate} jobs/s")
    interval = 1 / rate
    samples: list[Sample] = []
    submitted = 0
    started = time.monotonic()
    next_send = next_sample = started
    end = started + seconds
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            samples.append(sample(procs, now - started))
            next_sample += every
        elif now >= next_send:
            submit()
            submitted += 1
            next_send = max(next_send + interval, now - MAX_LAG_S)
        else:
            time.sleep(min(next_send, next_sample, end) - now)
    samples.append(sample(procs, time.monotonic() - started))
    return submitted, samples


def median_rss(samples: list[Sample], name: str, start: float, end: float) -> float:
    """Median RSS of `name` over the samples taken from `start` to `end` seconds."""
    chosen = [s.rss_mib[name] for s in samples if start <= s.t <= end]
    if not chosen:
        raise BenchError(f"no RSS sample of {name} between {start:.1f}s and {end:.1f}s")
    return statistics.median(chosen)
