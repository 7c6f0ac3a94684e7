"""Liveness, readiness (database and broker answer), and the job-type catalogue."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import PrincipalDep, SettingsDep
from api.schemas import JobTypeOut
from integrations.registry import JOB_TYPES
from store.db import get_database
from tasks.publish import producer_app

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
def readyz(settings: SettingsDep) -> JSONResponse:
    """Ready only when the database and the broker both answer."""
    checks: dict[str, str] = {}
    try:
        # Inside the check, not a dependency: failing to even build the engine is "unavailable".
        get_database(settings).ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        with producer_app(settings).connection_for_write() as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, timeout=settings.broker_timeout_s
            )
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"status": "ready" if ready else "unavailable", "checks": checks},
    )


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
