"""Rate limits shared by every API instance (GCRA in Redis): each key's request rate, and each
client address's budget of failed authentications (charged by `api.deps`).

The key rate is checked by an ASGI middleware before routing, body reading or validation,
keyed by the SHA-256 of the presented key (Bearer, or Basic for the console: the digest the
key table stores), so a flood is refused at the lowest cost the API can answer with.

The generic cell rate algorithm (ITU-T I.371; a token bucket kept as one timestamp) admits
`rate_per_s` requests a second with bursts of up to `burst`, in one key per API key and one
round trip per request, on Redis' clock so instances on many hosts agree. Written here on
`redis.asyncio` rather than reusing `integrations.ratelimit` (a sorted set per key, synchronous
client): the API checks on the event loop, without a thread hop, and `api` may not import
`integrations` beyond the job-type registry and signing.

When Redis cannot answer within `CHECK_TIMEOUT_S`, the limiter stands aside for
`STAND_ASIDE_S` (one log line), so an outage costs one short wait, not one per request. The key
rate then lets requests through: it protects the service, it must not become the reason it is
slow or down. The failure budget keeps counting in each instance's memory (`LocalGcra`): a
guesser must not gain from an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI
from redis.exceptions import NoScriptError, RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.credentials import presented_secret
from api.shared_redis import limits_redis
from store.keys import hash_key

log = structlog.get_logger(__name__)

# KEYS[1] the key's theoretical arrival time (µs); ARGV: emission interval µs, tolerance µs.
# Answers -1 when admitted, else the µs until the request would be.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - tolerance - now
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 1)
return -1
"""
# Undo one counted event (a charge that turned out not to be owed); answers -1.
_GCRA_GIVE_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - tonumber(ARGV[1])
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return -1
"""
# A check slower than this is skipped (admitted); then the limiter stands aside for a while.
CHECK_TIMEOUT_S = 0.25
STAND_ASIDE_S = 5.0

_SHAS = {
    script: hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    for script in (_GCRA, _GCRA_GIVE_BACK)
}


@dataclass(frozen=True)
class Verdict:
    """Admitted, or how long until the request would be (seconds, > 0)."""

    admitted: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds, at least 1 (RFC 9110 §10.2.3)."""
        return str(max(1, math.ceil(self.retry_after_s)))


ADMITTED = Verdict(True)


class LocalGcra:
    """The same algorithm in this process's memory, for `size` keys at most (least recent go)."""

    def __init__(self, interval_us: float, tolerance_us: float, size: int = 10_000) -> None:
        self.interval_us = interval_us
        self.tolerance_us = tolerance_us
        self.size = size
        self._tat: OrderedDict[str, float] = OrderedDict()

    def hit(self, key: str) -> Verdict:
        """Count one event for `key`, or say how long until it would be admitted."""
        now = time.monotonic() * 1_000_000
        new_tat = max(self._tat.get(key, now), now) + self.interval_us
        wait_us = new_tat - self.tolerance_us - now
        if wait_us > 0:
            return Verdict(False, wait_us / 1_000_000)
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self.size:
            self._tat.popitem(last=False)
        return ADMITTED

    def give_back(self, key: str) -> None:
        """Undo one counted event for `key`."""
        if key in self._tat:
            self._tat[key] -= self.interval_us


class RequestRateLimiter:
    """`rate_per_s` events a second per key, bursts up to `burst`; `kind` names the budget.

    A limiter with `local_fallback` also counts in this process's memory, and refuses when
    either count is spent: while Redis cannot answer, each instance still holds its own budget.
    One without admits then (it must not become the outage).
    """

    def __init__(
        self,
        prefix: str,
        rate_per_s: float,
        burst: int,
        kind: str = "api-rate",
        *,
        local_fallback: bool = False,
    ) -> None:
        self.prefix = prefix
        self.kind = kind
        self.interval_us = 1_000_000 / rate_per_s if rate_per_s > 0 else 0.0
        self.tolerance_us = self.interval_us * burst
        self._aside_until = 0.0
        self.local = LocalGcra(self.interval_us, self.tolerance_us) if local_fallback else None

    async def hit(self, client: aioredis.Redis, key: str) -> Verdict:
        """Count one event for `key`; the verdict (admitted when Redis is unavailable)."""
        return await self._run(client, _GCRA, key)

    async def give_back(self, client: aioredis.Redis, key: str) -> None:
        """Undo one event counted for `key` by `hit` (best effort)."""
        await self._run(client, _GCRA_GIVE_BACK, key)

    async def _run(self, client: aioredis.Redis, script: str, key: str) -> Verdict:
        if self.interval_us <= 0:
            return ADMITTED
        # A local budget counts every event, Redis or not: when Redis then cannot answer (an
        # outage, or a check slowed past CHECK_TIMEOUT_S by a flood), it already holds all
        # this instance admitted, so neither hands out a fresh burst.
        local = self._locally(script, key)
        if time.monotonic() < self._aside_until or not local.admitted:
            return local
        args = (f"{self.prefix}conveyor:{self.kind}:{key}", self.interval_us, self.tolerance_us)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                try:
                    # By digest: Redis neither receives nor hashes the script on every request.
                    wait_us = int(await client.evalsha(_SHAS[script], 1, *args))
                except NoScriptError:
                    wait_us = int(await client.eval(script, 1, *args))
        except (RedisError, TimeoutError) as exc:
            if time.monotonic() >= self._aside_until:  # one line per stand-aside, not per request
                log.warning("api.rate_limit_unavailable", kind=self.kind, error=type(exc).__name__)
            self._aside_until = time.monotonic() + STAND_ASIDE_S
            return local
        return ADMITTED if wait_us < 0 else Verdict(False, wait_us / 1_000_000)

    def _locally(self, script: str, key: str) -> Verdict:
        if self.local is None:
            return ADMITTED
        if script == _GCRA:
            return self.local.hit(key)
        self.local.give_back(key)
        return ADMITTED


def client_address(scope: Scope) -> str:
    """The peer's address (uvicorn puts a trusted proxy's `X-Forwarded-For` here); `-` if none."""
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _presented_key(scope: Scope) -> str | None:
    """The API key in the request's Authorization header (Bearer, or Basic for the console)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return presented_secret(value.decode("latin-1"))
    return None


class KeyRateLimit:
    """ASGI middleware: `429 rate_limited` with `Retry-After` for a key over its rate."""

    def __init__(self, app: ASGIApp, api: FastAPI, limiter: RequestRateLimiter) -> None:
        self.app = app
        self.api = api
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secret = _presented_key(scope) if scope["type"] == "http" else None
        if secret is not None and self.limiter.interval_us > 0:
            verdict = await self.limiter.hit(limits_redis(self.api), hash_key(secret))
            if not verdict.admitted:
                await _refuse(send, verdict)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, verdict: Verdict) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "rate_limited",
                "message": "too many requests for this API key",
                "details": {"retry_after_s": round(verdict.retry_after_s, 3)},
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", verdict.retry_after_header.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
