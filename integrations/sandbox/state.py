"""The sandbox's memory: counters, idempotency records and the fault script, behind one lock."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from integrations.sandbox.faults import Fault


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
        self._keys_seen: Counter[str] = Counter()
        self._effects: Counter[str] = Counter()
        self._saved: dict[str, SavedResponse] = {}
        self._in_flight: set[str] = set()
        self._script: deque[Fault] = deque()

    def reset(self) -> None:
        """Forget everything and return to the start-up latency."""
        with self._lock:
            self._clear()

    def count(self, path: str, idempotency_key: str | None) -> None:
        """Record one provider request as it arrives."""
        with self._lock:
            self._requests += 1
            self._by_path[path] += 1
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

    def next_fault(self) -> Fault | None:
        """Pop the next scripted fault, if any."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters, as the stats endpoint reports them."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_path": dict(self._by_path),
                "effects": dict(self._effects),
                "keys_seen": dict(self._keys_seen),
                "script_remaining": len(self._script),
                "latency_ms": self.latency_ms,
            }
