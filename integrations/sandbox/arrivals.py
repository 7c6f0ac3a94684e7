"""When provider requests arrived, and the busiest window of them: a measure of request rate."""

from __future__ import annotations

from collections.abc import Iterable

# Per path; a benchmark at a few thousand requests a second keeps its last half-minute or more.
MAX_ARRIVALS = 100_000
DEFAULT_WINDOW_S = 1.0
MAX_WINDOW_S = 86_400.0


def max_in_window(arrivals: Iterable[float], window_s: float) -> int:
    """The most arrivals inside any window `[t, t + window_s)` that opens on an arrival `t`."""
    # Threads record their times a moment after taking them, so the order is only nearly sorted.
    times = sorted(arrivals)
    busiest = 0
    first = 0
    for last, moment in enumerate(times):
        while times[first] + window_s <= moment:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest
