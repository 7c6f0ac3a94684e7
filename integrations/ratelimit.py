"""A sliding-window rate limiter in Redis, shared by every worker process.

One sorted set per key holds the times of recent calls; a Lua script trims, counts and adds
atomically, on Redis' clock, so processes on many hosts agree. Hand-written rather than the
`limits` package because that one's windows are whole seconds: we need a small guard on top of
the window so that a call admitted at the edge still reaches the provider inside its budget.
"""

from __future__ import annotations

import uuid

import redis

# KEYS[1] the set; ARGV: limit, window in microseconds, a unique member.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window - now, 1)
"""


class RedisRateLimiter:
    """Admit at most `limit` calls per key in any window of `window_s` seconds."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_SCRIPT)

    def acquire(self, key: str, limit: int, window_s: float) -> float:
        """0.0 when the call may go now (and is counted); else seconds until a slot frees."""
        wait_us = self._script(
            keys=[key], args=[limit, int(window_s * 1_000_000), uuid.uuid4().hex]
        )
        return 0.0 if int(wait_us) < 0 else int(wait_us) / 1_000_000
