"""The verified-key cache: values expire after their TTL and the least recently used go first."""

from __future__ import annotations

import time

from api.keycache import TtlCache


def test_cached_value_expires_after_its_ttl() -> None:
    # Given a value cached for 50 ms
    cache: TtlCache[str] = TtlCache(ttl_s=0.05)
    cache.put("k", "tenant")
    # When it is read at once and after 80 ms, Then only the first read finds it
    assert cache.get("k") == "tenant"
    time.sleep(0.08)
    assert cache.get("k") is None


def test_least_recently_used_entry_is_evicted_beyond_the_size() -> None:
    # Given a cache of two entries where "a" was read last
    cache: TtlCache[int] = TtlCache(ttl_s=60, size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    # When a third entry arrives, Then "b" made room
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
