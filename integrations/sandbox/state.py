"""The sandbox's memory: counters, arrivals, idempotency records and faults, behind one lock."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from integrations.sandbox.arrivals import DEFAULT_WINDOW_S, MAX_ARRIVALS, max_in_window
from integrations.sandbox.faults import Fault
from integrations.sandbox.outage import Outage
from integrations.sandbox.psp import PaymentBook

# How long each provider honours an idempotency key; the legacy charges API ("") forever.
KEY_RETENTION_S: dict[str, float | None] = {"": None, "stripe": 24 * 3600.0, "adyen": 7 * 86400.0}


@dataclass(frozen=True)
class SavedResponse:
    """The answer recorded under an idempotency key, with the fingerprint of what it answered."""

    status: int
    body: dict[str, Any]
    fingerprint: str
    headers: dict[str, str] = field(default_factory=dict)


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
        self.book = PaymentBook()
        self._clear()

    def _clear(self) -> None:
        self.latency_ms = self._start_latency_ms
        self._requests = 0
        self._by_path: Counter[str] = Counter()
        self._arrivals: dict[str, deque[float]] = {}
        self._keys_seen: Counter[str] = Counter()
        self._effects: Counter[str] = Counter()
        # Idempotency records are per provider ("scope"): Stripe's and Adyen's keys never meet.
        self._saved: dict[tuple[str, str], tuple[SavedResponse, float]] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._performed: Counter[tuple[str, str]] = Counter()
        self._retention_s = dict(KEY_RETENTION_S)
        self._script: deque[Fault] = deque()
        self._outage: Outage | None = None
        self.book.clear()

    def reset(self) -> None:
        """Forget everything (payments too) and return to the start-up latency and retention."""
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

    def claim(
        self, key: str, fingerprint: str, scope: str = ""
    ) -> tuple[Claim, SavedResponse | None]:
        """Decide what a request may do with `key`; PERFORM marks the key in flight."""
        with self._lock:
            record = self._saved.get((scope, key))
            if record is not None and self._expired(scope, record[1]):
                # The provider pruned the key: the same key now starts a new request.
                del self._saved[(scope, key)]
                record = None
            saved = record[0] if record is not None else None
            if saved is not None and saved.fingerprint == fingerprint:
                return Claim.REPLAY, saved
            if saved is not None:
                return Claim.REUSED, None
            if (scope, key) in self._in_flight:
                return Claim.IN_USE, None
            self._in_flight.add((scope, key))
            return Claim.PERFORM, None

    def _expired(self, scope: str, saved_at: float) -> bool:
        retention_s = self._retention_s.get(scope)
        return retention_s is not None and time.monotonic() - saved_at > retention_s

    def save(self, key: str, response: SavedResponse, *, effect: bool, scope: str = "") -> None:
        """Record the answer under `key`, count the effect if money moved, end the flight."""
        with self._lock:
            self._saved[(scope, key)] = (response, time.monotonic())
            self._performed[(scope, key)] += 1
            if effect:
                self._effects[key] += 1
            self._in_flight.discard((scope, key))

    def release(self, key: str, scope: str = "") -> None:
        """End a flight that saved nothing, so a retry may perform it."""
        with self._lock:
            self._in_flight.discard((scope, key))

    def performed(self, key: str, scope: str = "") -> int:
        """How many times a request under `key` was performed before (keys expire, then recur)."""
        with self._lock:
            return self._performed[(scope, key)]

    def add_effect(self, label: str) -> None:
        """Count an effect made outside the idempotency layer (no key, or an admin payment)."""
        with self._lock:
            self._effects[label] += 1

    def set_retention(self, seconds: Mapping[str, float]) -> None:
        """Override how long providers keep keys (until reset), e.g. `{"stripe": 2.0}`."""
        with self._lock:
            self._retention_s.update(seconds)

    def retention_s(self) -> dict[str, float | None]:
        """Key retention per provider, in seconds."""
        with self._lock:
            return {scope: s for scope, s in self._retention_s.items() if scope}

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
