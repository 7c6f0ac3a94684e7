"""The API process's asyncio Redis client (rate limits, long-poll notices), one per event loop.

asyncio connections belong to the loop that opened them; uvicorn runs one loop for the life of
the process, while a test client may run a loop per request, so the client is remade whenever
it is asked for from another loop.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from fastapi import FastAPI

from config.settings import Settings


def api_redis(app: FastAPI) -> aioredis.Redis:
    """This loop's client on the guard Redis (else the broker), bounded by the broker timeout."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = getattr(
        app.state, "redis", None
    )
    if held is not None and held[0] is loop:
        return held[1]
    settings: Settings = app.state.settings
    client = aioredis.Redis.from_url(
        settings.guard_redis_url or settings.broker_url,
        socket_timeout=settings.broker_timeout_s,
        socket_connect_timeout=settings.broker_timeout_s,
    )
    app.state.redis = (loop, client)
    return client


async def close_api_redis(app: FastAPI) -> None:
    """Close the client at shutdown, if this loop made one."""
    held: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = getattr(
        app.state, "redis", None
    )
    if held is not None and held[0] is asyncio.get_running_loop():
        app.state.redis = None
        await held[1].aclose()
