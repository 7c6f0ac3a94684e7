"""Long polls: hold an answer until a job ends, woken by the worker's notice, never by polling.

A waiting client holds no request thread: the wait is an asyncio subscription on the API's
Redis client, and only the database reads before and after it run in threads, at most
`WAIT_THREADS` at a time, so a burst of long polls never takes the threads submits and
`/readyz` need. Each key may hold `CONVEYOR_API_WAITS_PER_KEY` waits at once on an instance;
one more is `429 too_many_waits`, so one tenant's long polls cannot use up what every tenant
shares.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import redis.asyncio as aioredis
from fastapi import Query, Response, status
from redis.exceptions import RedisError

from api.errors import ApiError
from api.schemas import JobOut
from config.settings import Settings
from store.db import Database
from store.jobs import ask_to_notify, get_job
from store.models import Job
from store.states import TERMINAL_STATES
from tasks.notify import channel

# How often a wait reads the job while Redis, which would announce its end, is away (seconds).
FALLBACK_POLL_S = 0.5

WAIT_MAX_S = 30.0
WaitQuery = Annotated[
    float,
    Query(
        ge=0,
        le=WAIT_MAX_S,
        description="seconds to hold the answer until the job ends (woken by the worker)",
    ),
]
# Seconds a client told `too_many_waits` should hold off: by then some wait of its has ended.
WAIT_RETRY_AFTER_S = 1
# Threads long polls may use at once for their database reads (of the 40 Starlette shares).
WAIT_THREADS = 8

T = TypeVar("T")


def load_job(db: Database, job_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> Job | None:
    """A job with its attempts, optionally only if it belongs to the tenant."""
    with db.session() as session:
        return get_job(session, job_id, tenant_id)


class WaitSlots:
    """How many long polls each key holds on this instance, capped at `per_key`."""

    def __init__(self, per_key: int, threads: int = WAIT_THREADS) -> None:
        self.per_key = per_key
        self.threads = threads
        self._held: dict[uuid.UUID, int] = {}
        self._limiter: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread, at most `threads` of them for all long polls."""
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            self._limiter = (loop, anyio.CapacityLimiter(self.threads))
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter[1])

    @asynccontextmanager
    async def hold(self, key_id: uuid.UUID) -> AsyncIterator[None]:
        """One slot for the block, or `429 too_many_waits` (event loop only: no lock needed)."""
        held = self._held.get(key_id, 0)
        if held >= self.per_key:
            raise ApiError(
                429,
                "too_many_waits",
                f"this API key already holds {held} waiting requests",
                {"limit": self.per_key},
                headers={"Retry-After": str(WAIT_RETRY_AFTER_S)},
            )
        self._held[key_id] = held + 1
        try:
            yield
        finally:
            left = self._held[key_id] - 1
            if left:
                self._held[key_id] = left
            else:
                del self._held[key_id]


class EndNotice:
    """A subscription to one job's end notice, made before the job can possibly end."""

    def __init__(self, pubsub: aioredis.client.PubSub | None) -> None:
        self._pubsub = pubsub
        self.broken = pubsub is None  # Redis could not be reached, or went away meanwhile

    async def wait(self, timeout_s: float) -> bool:
        """True once the end is announced; False at the timeout or when Redis goes away."""
        if self._pubsub is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                while await self._pubsub.get_message(timeout=timeout_s) is None:
                    pass
                return True
        except TimeoutError:
            return False
        except RedisError:
            self.broken = True
            return False


@asynccontextmanager
async def end_notice(
    client: aioredis.Redis, settings: Settings, job_id: uuid.UUID
) -> AsyncIterator[EndNotice]:
    """Listen for `job_id`'s end; a notice that never comes when Redis cannot be reached."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel(settings, job_id))
    except RedisError:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        yield EndNotice(None)
        return
    try:
        yield EndNotice(pubsub)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def wait_for_end(
    slots: WaitSlots,
    client: aioredis.Redis,
    settings: Settings,
    db: Database,
    job_id: uuid.UUID,
    wait: float,
) -> None:
    """Return once the job ends (announced by whoever ends it) or after `wait` seconds.

    Subscribed first, then the ender asked to announce in the statement that reads the state:
    an end before that statement is seen in the state, an end after it is announced. While
    Redis cannot be reached, the job is read every FALLBACK_POLL_S instead.
    """
    deadline = asyncio.get_running_loop().time() + wait
    async with end_notice(client, settings, job_id) as notice:
        state = await slots.run(ask_to_notify, db, job_id)
        unfinished = state is not None and state not in TERMINAL_STATES
        if unfinished and not await notice.wait(wait) and notice.broken:
            # No notice can come while Redis is away: read the job until it ends or the wait
            # runs out, rather than answer at once (a client looping on `wait` would spin).
            await _poll_until_end(slots, db, job_id, deadline)


async def _poll_until_end(
    slots: WaitSlots, db: Database, job_id: uuid.UUID, deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(FALLBACK_POLL_S, left))
        job = await slots.run(load_job, db, job_id)
        if job is None or job.state in TERMINAL_STATES:
            return


async def answer_after_wait(
    slots: WaitSlots, db: Database, job: Job, response: Response, unfinished_status: int
) -> JobOut:
    """The job after a wait: 200 when it ended, `unfinished_status` while it still runs."""
    current = await slots.run(load_job, db, job.id) or job
    finished = current.state in TERMINAL_STATES
    response.status_code = status.HTTP_200_OK if finished else unfinished_status
    return JobOut.of(current, with_attempts=True)
