"""Liveness, readiness (database and broker answer, every queue with work is consumed), and
the job-type catalogue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import PrincipalDep, SettingsDep
from api.jsonbody import JsonBodyRoute
from api.openapi import error_responses
from api.schemas import JobTypeOut
from config.settings import Settings
from integrations.registry import JOB_TYPES
from store.db import get_database
from tasks.publish import producer_app
from tasks.queue_health import QueueHealth, check_queues

router = APIRouter(route_class=JsonBodyRoute)

# /readyz answers within this (seconds), whatever the database and the broker do.
READY_TIMEOUT_S = 1.0
# What a not-ready answer asks a prober to wait before asking again (seconds).
NOT_READY_RETRY_AFTER_S = 5


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["health"],
    responses={
        200: {"description": "database and broker answer; every queue with work is consumed"},
        **error_responses(503),
    },
)
async def readyz(settings: SettingsDep) -> JSONResponse:
    """Ready when the database and the broker answer and each queue with work has a live
    consumer that took a message recently, all within `READY_TIMEOUT_S`.

    The checks run on threads of their own, never the request thread pool, so a readiness
    probe does not queue behind client requests stuck on a dead database; a check still
    running from an earlier probe is awaited, not started again.
    """
    checks = {
        "database": _probes.start("database", lambda: get_database(settings).ping()),
        "broker": _probes.start("broker", lambda: _ping_broker(settings)),
        "consumers": _probes.start("consumers", lambda: check_queues(settings)),
    }
    await asyncio.wait([asyncio.wrap_future(f) for f in checks.values()], timeout=READY_TIMEOUT_S)
    results = {name: _verdict(future) for name, future in checks.items()}
    content: dict[str, Any] = {"checks": results}
    queues = checks["consumers"]
    if results["consumers"] == "ok":
        health: list[QueueHealth] = queues.result()
        content["queues"] = {q.queue: q.as_dict() for q in health}
        waiting = [f"{q.queue}: {q.verdict.value}" for q in health if not q.ready]
        if waiting:
            results["consumers"] = "unavailable: " + ", ".join(waiting)
    failing = {name: v for name, v in results.items() if v != "ok"}
    if not failing:
        return JSONResponse(status_code=200, content={"status": "ready", **content})
    # Not ready is also an error answer in the one shape (`not_ready`), the checks beside it.
    message = "not ready: " + "; ".join(f"{name}: {v}" for name, v in failing.items())
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)},
        content={
            "error": {"code": "not_ready", "message": message, "details": failing},
            "status": "unavailable",
            **content,
        },
    )


def _ping_broker(settings: Settings) -> None:
    with producer_app(settings).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=settings.broker_timeout_s)


def _verdict(future: Future[Any]) -> str:
    if not future.done():
        return f"unavailable: no answer within {READY_TIMEOUT_S}s"
    exc = future.exception()
    return "ok" if exc is None else f"unavailable: {type(exc).__name__}"


class _Probes:
    """At most one check of each kind in flight per process, on a small pool of its own."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
        self._running: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def start(self, name: str, check: Callable[[], Any]) -> Future[Any]:
        with self._lock:
            running = self._running.get(name)
            if running is None or running.done():
                running = self._running[name] = self._pool.submit(check)
            return running


_probes = _Probes()


@router.get("/v1/job-types", response_model=list[JobTypeOut], tags=["job types"])
def job_types(_: PrincipalDep) -> list[JobTypeOut]:
    """Every job type that can be submitted, with its payload schema."""
    return [
        JobTypeOut(
            name=jt.name,
            queue=jt.queue,
            description=jt.description,
            payload_schema=jt.payload_schema(),
        )
        for jt in JOB_TYPES.values()
    ]
