"""Exponential backoff with full jitter: one pure function, randomness injectable."""

from __future__ import annotations

import random
from collections.abc import Callable

# 2**62 seconds is already forever; stop there so the float never overflows.
MAX_EXPONENT = 62


def compute_backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry `attempt` (1-based): random(0, min(cap, base·2^(n-1))).

    A provider's Retry-After is a floor: we never come back sooner than it asked.
    """
    exponent = min(max(attempt - 1, 0), MAX_EXPONENT)
    ceiling: float = min(cap, base * float(2**exponent))
    delay = float(rand()) * ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
