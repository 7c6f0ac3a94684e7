"""Full-jitter exponential backoff: bounds, Retry-After floor, spread."""

from __future__ import annotations

import random
import statistics

import pytest

from tasks.backoff import compute_backoff


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12, 40, 10_000])
def test_delays_stay_within_zero_and_the_capped_exponential(attempt: int) -> None:
    # Given base 0.5 s and cap 60 s
    rng = random.Random(attempt)
    ceiling = min(60.0, 0.5 * 2 ** min(attempt - 1, 62))
    # When 2,000 delays are drawn
    delays = [compute_backoff(attempt, base=0.5, cap=60.0, rand=rng.random) for _ in range(2000)]
    # Then every one lies in [0, min(cap, base·2^(n-1))]
    assert all(0.0 <= d <= ceiling for d in delays)
    # And they spread over the range (full jitter): mean near the middle, wide spread
    assert statistics.mean(delays) == pytest.approx(ceiling / 2, rel=0.1)
    assert statistics.pstdev(delays) > ceiling / 4


def test_jittered_delays_of_many_jobs_are_not_synchronised() -> None:
    # Given 500 jobs failing at the same moment on their 4th attempt
    rng = random.Random(1)
    delays = [compute_backoff(4, base=1.0, cap=30.0, rand=rng.random) for _ in range(500)]
    # When their retries are bucketed per 100 ms
    buckets = {int(d * 10) for d in delays}
    # Then they spread over most of the 8 s window instead of retrying together
    assert len(buckets) > 60
    assert max(delays) - min(delays) > 7.0


def test_retry_after_is_a_floor() -> None:
    # Given a provider asking for 10 s and a jitter that would say 0
    # When the delay is computed, Then it is at least 10 s
    assert compute_backoff(1, base=1.0, cap=5.0, retry_after=10.0, rand=lambda: 0.0) == 10.0
    assert compute_backoff(9, base=1.0, cap=300.0, retry_after=1.0, rand=lambda: 1.0) == 256.0


def test_injected_randomness_pins_the_value() -> None:
    assert compute_backoff(3, base=2.0, cap=100.0, rand=lambda: 0.25) == 2.0
