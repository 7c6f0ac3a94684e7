"""The API process's asyncio Redis clients, one per event loop: one for long-poll notices, one
for the limits (request rates, failed-authentication budgets).

asyncio connections belong to the loop that opened them; uvicorn runs one loop for the life of
the process, while a test client may run a loop per request, so a client is remade whenever it
is asked for from another loop. Each client has a pool of its own that a request waits on when
it is busy (redis-py's plain pool holds 100 and raises instead): long polls, which each hold a
connection, cannot empty the limits' pool and so switch the limits off, and up to
NOTICES_POOL_SIZE of them wait at once.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from fastapi import FastAPI

from config.settings import Settings

# The limits' pool: connections, and how long a check waits for one (seconds).
LIMITS_POOL_SIZE = 64
LIMITS_POOL_WAIT_S = 0.25
# The long polls' pool: each wait holds one connection (a subscription) while it waits; past
# this many at once on one instance, a wait answers at once with the job as it stands.
NOTICES_POOL_SIZE = 1024
NOTICES_POOL_WAIT_S = 1.0


def api_redis(app: FastAPI) -> aioredis.Redis:
    """This loop's client on the guard Redis (else the broker), for long-poll notices."""
    return _client(app, "redis", limits=False)


def limits_redis(app: FastAPI) -> aioredis.Redis:
    """This loop's client for rate limits and budgets, on a pool of its own that waits."""
    return _client(app, "limits_redis", limits=True)


def _client(app: FastAPI, slot: str, *, limits: bool) -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = getattr(app.state, slot, None)
    if held is not None and held[0] is loop:
        return held[1]
    settings: Settings = app.state.settings
    url = settings.guard_redis_url or settings.broker_url
    timeout_s = settings.broker_timeout_s
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=LIMITS_POOL_SIZE if limits else NOTICES_POOL_SIZE,
        timeout=LIMITS_POOL_WAIT_S if limits else NOTICES_POOL_WAIT_S,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    client = aioredis.Redis(connection_pool=pool)
    setattr(app.state, slot, (loop, client))
    return client


async def close_api_redis(app: FastAPI) -> None:
    """Close the clients at shutdown, if this loop made them."""
    for slot in ("redis", "limits_redis"):
        held: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = getattr(
            app.state, slot, None
        )
        if held is not None and held[0] is asyncio.get_running_loop():
            setattr(app.state, slot, None)
            await held[1].aclose()
