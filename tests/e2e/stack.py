"""A real Conveyor stack for end-to-end tests: API and worker processes on this run's DB."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import Proc, free_port, http_ok, python_argv, wait_until


def stack_env(
    database_url: str, broker_prefix: str, sandbox_url: str, **extra: str
) -> dict[str, str]:
    """Environment for Conveyor processes of this test run."""
    return {
        "CONVEYOR_DATABASE_URL": database_url,
        "CONVEYOR_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CONVEYOR_BROKER_KEY_PREFIX": broker_prefix,
        "CONVEYOR_SANDBOX_URL": sandbox_url,
        "CONVEYOR_LOG_JSON": "false",
        "CONVEYOR_LOG_LEVEL": "INFO",
        "CONVEYOR_DUE_POLL_S": "0.2",
        "CONVEYOR_BACKOFF_BASE_S": "0.1",
        "CONVEYOR_BACKOFF_CAP_S": "0.5",
        **extra,
    }


@contextmanager
def api_process(env: dict[str, str], logs: Path) -> Iterator[str]:
    """The API served by uvicorn on a free port; yields its base URL."""
    port = free_port()
    proc = Proc("api", python_argv("-m", "workers.cli", "api", "--port", str(port)), env, logs)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/healthz"), f"the API on port {port} to answer /healthz")
        yield url
    finally:
        proc.stop()


@contextmanager
def worker_process(
    env: dict[str, str], logs: Path, name: str = "worker", extra: Sequence[str] = ()
) -> Iterator[Proc]:
    """A Celery worker consuming every queue; ready once it logs that it is."""
    argv = python_argv("-m", "workers.cli", "worker", f"--hostname={name}-{free_port()}@%h", *extra)
    proc = Proc(name, argv, env, logs)
    try:
        wait_until(lambda: " ready." in proc.log(), f"the worker {name} to log 'ready.'")
        yield proc
    finally:
        proc.stop()
