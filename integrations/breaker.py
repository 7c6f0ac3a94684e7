"""A circuit breaker per provider whose state lives in Redis, shared by every worker process.

closed ──(threshold consecutive failures)──▶ open ──(open_s passes)──▶ half-open
half-open: one probe at a time may call; success closes, failure opens again.

Hand-written on Redis primitives rather than pybreaker: pybreaker's half-open state admits every
caller at once and its Redis storage updates state with read-then-write, so N processes would
all probe a recovering provider together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import redis
import structlog

log = structlog.get_logger(__name__)

# A half-open marker outlives the open period by this factor; after that the breaker forgets.
HALF_OPEN_MEMORY = 20
# While one probe is in flight the others ask again this soon (seconds), not when the probe's
# token would expire (the attempt deadline): a probe usually answers in milliseconds.
PROBE_WAIT_CAP_S = 1.0


class BreakerState(StrEnum):
    """Where a provider's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerCheck:
    """One look at a breaker: may the caller go ahead, and what did it see."""

    wait_s: float | None  # None: call now; otherwise seconds before asking again
    failures: int  # consecutive failures counted so far
    half_open: bool  # recovering: a success must be reported to close it for everyone


class RedisBreaker:
    """One provider's breaker; every method is a few atomic Redis commands."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        threshold: int,
        open_s: float,
        probe_timeout_s: float,
    ) -> None:
        self.client = client
        self.key = key
        self.threshold = threshold
        self.open_ms = int(open_s * 1000)
        self.probe_ms = int(probe_timeout_s * 1000)

    def state(self) -> BreakerState:
        """The current state, as all processes see it."""
        if self.client.exists(f"{self.key}:open"):
            return BreakerState.OPEN
        if self.client.exists(f"{self.key}:half"):
            return BreakerState.HALF_OPEN
        return BreakerState.CLOSED

    def allow(self) -> float | None:
        """None when a call may go ahead; otherwise seconds to wait before asking again."""
        return self.check().wait_s

    def check(self) -> BreakerCheck:
        """`allow()` plus what it saw (failures, half-open), in one round trip (two to probe)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.pttl(f"{self.key}:open")
        pipe.exists(f"{self.key}:half")
        pipe.get(f"{self.key}:failures")
        open_ttl, half_open, failures = pipe.execute()
        count = int(failures or 0)
        if open_ttl > 0:
            return BreakerCheck(float(open_ttl) / 1000, count, half_open=bool(half_open))
        if not half_open:
            return BreakerCheck(None, count, half_open=False)
        return BreakerCheck(self._probe(), count, half_open=True)

    def _probe(self) -> float | None:
        # Half-open: only the holder of the probe token calls; the rest wait for its verdict.
        if self.client.set(f"{self.key}:probe", "1", nx=True, px=self.probe_ms):
            log.info("breaker.probe", breaker=self.key)
            return None
        probe_ttl = self.client.pttl(f"{self.key}:probe")
        return min(max(probe_ttl, 100) / 1000, PROBE_WAIT_CAP_S)

    def success(self) -> None:
        """A call succeeded: a half-open breaker closes; failures are forgotten."""
        pipe = self.client.pipeline()
        pipe.delete(f"{self.key}:failures")
        pipe.delete(f"{self.key}:half")
        pipe.delete(f"{self.key}:probe")
        deleted = pipe.execute()
        if deleted[1]:
            log.info("breaker.state_changed", breaker=self.key, state=BreakerState.CLOSED.value)

    def failure(self) -> None:
        """A call failed: open after `threshold` in a row, or at once when probing."""
        probing = bool(self.client.exists(f"{self.key}:half"))
        failures = int(self.client.incr(f"{self.key}:failures"))
        self.client.pexpire(f"{self.key}:failures", self.open_ms * HALF_OPEN_MEMORY)
        if probing or failures >= self.threshold:
            self.trip()

    def trip(self) -> None:
        """Open the breaker now."""
        pipe = self.client.pipeline()
        pipe.set(f"{self.key}:open", "1", px=self.open_ms)
        pipe.set(f"{self.key}:half", "1", px=self.open_ms * HALF_OPEN_MEMORY)
        pipe.delete(f"{self.key}:failures")
        pipe.delete(f"{self.key}:probe")
        pipe.execute()
        log.warning("breaker.state_changed", breaker=self.key, state=BreakerState.OPEN.value)
