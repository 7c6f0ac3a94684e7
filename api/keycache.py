"""A short-lived cache of verified API keys, so a submit costs no key lookup most of the time."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")

# A revoked (or rotated-out) key keeps working for at most this long on an API instance that has
# seen it: one key lookup per key per second per instance buys revocation within one second.
KEY_CACHE_TTL_S = 1.0
KEY_CACHE_SIZE = 4096
# A key that authenticated on this instance within this long is not held back by its client
# address's budget of failed authentications (it is still looked up and checked as ever).
KNOWN_GOOD_TTL_S = 3600.0


class TtlCache(Generic[V]):
    """Thread-safe LRU with a time-to-live; keys are SHA-256 digests, never secrets."""

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, size: int = KEY_CACHE_SIZE) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        """The value if present and fresh."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.monotonic():
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return item[1]

    def discard(self, key: str) -> None:
        """Forget `key`, if held."""
        with self._lock:
            self._items.pop(key, None)

    def put(self, key: str, value: V) -> None:
        """Remember a value for the TTL, evicting the least recently used beyond the size."""
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl_s, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
