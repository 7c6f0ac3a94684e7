"""The worker side's metrics endpoint: one small HTTP server per worker process.

Started when the worker is ready (CONVEYOR_WORKER_METRICS_PORT, 0 = off), on
CONVEYOR_WORKER_METRICS_HOST, behind the same bearer token as the API's /metrics. With the
threads or solo pool every job runs in this process, so its registry holds every attempt; for a
prefork pool set PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and the
endpoint serves the sum of every child's files.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from celery.signals import worker_ready
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app, multiprocess

from config.settings import Settings, get_settings

log = structlog.get_logger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def guarded(app: WsgiApp, token: str) -> WsgiApp:
    """Wrap a WSGI app so it answers only `Authorization: Bearer <token>` (else 401)."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
        return [b"send 'Authorization: Bearer <metrics token>'\n"]

    return wrapper


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Serve this process's metrics in a daemon thread; None when off (no port or no token)."""
    token = settings.metrics_token.get_secret_value()
    if not settings.worker_metrics_port:
        return None
    if not token:
        log.warning("worker.metrics_off", reason="CONVEYOR_METRICS_TOKEN is not set")
        return None
    app = guarded(make_wsgi_app(_registry()), token)
    server = make_server(
        settings.worker_metrics_host, settings.worker_metrics_port, app, handler_class=_Quiet
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("worker.metrics_serving", host=settings.worker_metrics_host, port=server.server_port)
    return server


@worker_ready.connect  # type: ignore[untyped-decorator]
def _serve_when_ready(**_: Any) -> None:
    try:
        serve_metrics(get_settings())
    except OSError as exc:
        log.error("worker.metrics_unavailable", error=str(exc))
