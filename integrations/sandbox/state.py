"""The sandbox's memory: counters, arrivals, idempotency records and faults, behind one lock."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from integrations.sandbox.arrivals import DEFAULT_WINDOW_S, MAX_ARRIVALS, max_in_window
from integrations.sandbox.faults import Fault
from integrations.sandbox.outage import Outage


@dataclass(frozen=True)
class SavedResponse:
    """The answer recorded under an idempotency key, with the fingerprint of what it answered."""

    status: int
    body: dict[str, Any]
    fingerprint: str


class Claim(Enum):
    """What an idempotency key lets the request carrying it do."""

    PERFORM = "perform"  # a new key: this request does the work
    REPLAY = "replay"  # same key and body as a finished request: answer what it got
    REUSED = "reused"  # same key, another body: refuse
    IN_USE = "in_use"  # the first request with this key has not finished: refuse, retryable


class SandboxState:
    """Everything the sandbox remembers between requests; every method is thread-safe."""

    def __init__(self, latency_ms: int = 0) -> None:
        self._lock = threading.Lock()
        self._start_latency_ms = latency_ms
        self._clear()

    def _clear(self) -> None:
        self.latency_ms = self._start_latency_ms
        self._requests = 0
        self._by_path: Counter[str] = Counter()
        self._arrivals: dict[str, deque[float]] = {}
        self._keys_seen: Counter[str] = Counter()
        self._effects: Counter[str] = Counter()
        self._saved: dict[str, SavedResponse] = {}
        self._in_flight: set[str] = set()
        self._script: deque[Fault] = deque()
        self._outage: Outage | None = None

    def reset(self) -> None:
        """Forget everything and return to the start-up latency."""
        with self._lock:
            self._clear()

    def count(self, path: str, idempotency_key: str | None, arrived_at: float) -> None:
        """Record one provider request as it arrives, at monotonic time `arrived_at`."""
        with self._lock:
            self._requests += 1
            self._by_path[path] += 1
            if path not in self._arrivals:
                self._arrivals[path] = deque(maxlen=MAX_ARRIVALS)
            self._arrivals[path].append(arrived_at)
            if idempotency_key:
                self._keys_seen[idempotency_key] += 1

    def claim(self, key: str, fingerprint: str) -> tuple[Claim, SavedResponse | None]:
        """Decide what a request may do with `key`; PERFORM marks the key in flight."""
        with self._lock:
            saved = self._saved.get(key)
            if saved is not None and saved.fingerprint == fingerprint:
                return Claim.REPLAY, saved
            if saved is not None:
                return Claim.REUSED, None
            if key in self._in_flight:
                return Claim.IN_USE, None
            self._in_flight.add(key)
            return Claim.PERFORM, None

    def save(self, key: str, response: SavedResponse, *, effect: bool) -> None:
        """Record the answer under `key`, count the effect if money moved, end the flight."""
        with self._lock:
            self._saved[key] = response
            if effect:
                self._effects[key] += 1
            self._in_flight.discard(key)

    def release(self, key: str) -> None:
        """End a flight that saved nothing, so a retry may perform it."""
        with self._lock:
            self._in_flight.discard(key)

    def set_script(self, faults: Iterable[Fault], latency_ms: int | None = None) -> int:
        """Replace the fault script (and the default latency if given); return its length."""
        with self._lock:
            self._script = deque(faults)
            if latency_ms is not None:
                self.latency_ms = latency_ms
            return len(self._script)

    def set_outage(self, outage: Outage | None) -> None:
        """Start `outage` in place of any current one; None ends the current one."""
        with self._lock:
            self._outage = outage

    def outage_at(self, moment: float) -> Outage | None:
        """The outage a request arriving at `moment` falls into, if any."""
        with self._lock:
            outage = self._outage
        return outage if outage is not None and outage.covers(moment) else None

    def outage_remaining_s(self) -> float:
        """Seconds until the current outage ends by itself; 0 when there is none."""
        with self._lock:
            outage = self._outage
        return 0.0 if outage is None else round(outage.remaining_s(time.monotonic()), 3)

    def next_fault(self) -> Fault | None:
        """Pop the next scripted fault, if any."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def stats(self, window_s: float = DEFAULT_WINDOW_S) -> dict[str, Any]:
        """A snapshot of the counters, as the stats endpoint reports them."""
        with self._lock:
            snapshot = {
                "requests": self._requests,
                "by_path": dict(self._by_path),
                "effects": dict(self._effects),
                "keys_seen": dict(self._keys_seen),
                "script_remaining": len(self._script),
                "latency_ms": self.latency_ms,
            }
            arrivals = {path: list(times) for path, times in self._arrivals.items()}
        # Sorting up to MAX_ARRIVALS per path happens outside the lock, off the requests' way.
        busiest = {path: max_in_window(times, window_s) for path, times in arrivals.items()}
        return snapshot | {
            "max_in_any_second": busiest,
            "outage_remaining_s": self.outage_remaining_s(),
        }
