"""The FastAPI application factory (`uvicorn api.app:create_app --factory`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import (
    admin_keys,
    batch,
    data,
    health,
    jobs,
    metrics,
    provider_webhooks,
    replay,
    schedules,
    webhook_callbacks,
    webhook_endpoints,
)
from api.allow import install_method_not_allowed
from api.docs import install_docs
from api.errors import install_error_handlers
from api.jsonbody import JsonBodyRoute
from api.keycache import KNOWN_GOOD_TTL_S, TtlCache
from api.limits import BodySizeLimit
from api.openapi import install_openapi
from api.ops import console
from api.quota import OpenJobQuota
from api.ratelimit import KeyRateLimit, RequestRateLimiter
from api.request_log import RequestLog
from api.shared_redis import close_api_redis
from api.unavailable import install_unavailable_handlers
from api.waiting import WaitSlots
from config.logging import configure_logging
from config.production import require_safe_settings
from config.runtime import freeze_startup_heap
from config.settings import Settings, get_settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    freeze_startup_heap()
    yield
    await close_api_redis(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API with its routes, error handlers and body limit."""
    settings = settings or get_settings()
    require_safe_settings(settings)  # also when served without the CLI (`uvicorn --factory`)
    configure_logging(settings)
    app = FastAPI(
        title="Conveyor",
        version="0.1.0",
        description="Submit background jobs; follow them to a terminal state.",
        lifespan=_lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
    )
    # Routes added on the app itself (the docs page) are checked like every router's.
    app.router.route_class = JsonBodyRoute
    app.state.settings = settings
    app.state.key_cache = TtlCache()
    # Keys that authenticated recently: exempt from the address's budget of failures.
    app.state.known_good = TtlCache[bool](ttl_s=KNOWN_GOOD_TTL_S)
    app.state.key_lookups = {}  # digest -> the lookup in flight (api.deps._shared_lookup)
    app.state.auth_failures = RequestRateLimiter(
        settings.broker_key_prefix,
        settings.api_auth_failures_per_s,
        settings.api_auth_failure_burst,
        kind="auth-failures",
        local_fallback=True,  # a guesser must not gain from a Redis outage
    )
    app.state.metrics_registry = metrics.registry_for(settings)
    app.state.wait_slots = WaitSlots(settings.api_waits_per_key)
    app.state.quota = OpenJobQuota(settings.api_open_jobs_per_tenant)
    install_error_handlers(app)
    console.install_console_errors(app)
    install_method_not_allowed(app)
    install_unavailable_handlers(app)
    app.include_router(health.router)
    app.include_router(batch.router)
    app.include_router(replay.router)
    app.include_router(jobs.router)
    app.include_router(provider_webhooks.router)
    app.include_router(schedules.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(webhook_callbacks.router)
    app.include_router(data.router)
    app.include_router(metrics.router)
    app.include_router(admin_keys.router)
    app.include_router(console.router)
    install_docs(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # A key over its rate is refused before anything else is spent on it.
    app.add_middleware(
        KeyRateLimit,
        api=app,
        limiter=RequestRateLimiter(
            settings.broker_key_prefix, settings.api_rate_limit_per_s, settings.api_rate_burst
        ),
    )
    app.add_middleware(
        RequestLog
    )  # outermost: its line covers every answer, 413s and 429s included
    install_openapi(app)
    return app
