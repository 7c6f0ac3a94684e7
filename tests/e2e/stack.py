"""A real Conveyor stack for end-to-end tests: API, worker and beat processes on this run's DB."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import redis

from tests.support.procs import Proc, free_port, http_ok, python_argv, wait_until

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def stack_env(
    database_url: str,
    broker_prefix: str,
    sandbox_url: str,
    broker_url: str = SHARED_REDIS,
    **extra: str,
) -> dict[str, str]:
    """Environment for Conveyor processes of this test run (extra: CONVEYOR_* overrides)."""
    return {
        "CONVEYOR_DATABASE_URL": database_url,
        "CONVEYOR_BROKER_URL": broker_url,
        "CONVEYOR_BROKER_KEY_PREFIX": broker_prefix,
        "CONVEYOR_SANDBOX_URL": sandbox_url,
        "CONVEYOR_LOG_JSON": "false",
        "CONVEYOR_LOG_LEVEL": "INFO",
        "CONVEYOR_DUE_POLL_S": "0.2",
        "CONVEYOR_SWEEP_INTERVAL_S": "0.5",
        "CONVEYOR_BACKOFF_BASE_S": "0.1",
        "CONVEYOR_BACKOFF_CAP_S": "0.5",
        **{f"CONVEYOR_{k.upper()}": v for k, v in extra.items()},
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


def start_worker(
    env: dict[str, str], logs: Path, name: str = "worker", extra: Sequence[str] = ()
) -> Proc:
    """Start a Celery worker consuming every queue and wait until it says it is ready."""
    argv = python_argv("-m", "workers.cli", "worker", f"--hostname={name}-{free_port()}@%h", *extra)
    proc = Proc(f"{name}-{free_port()}", argv, env, logs)
    wait_until(lambda: " ready." in proc.log(), f"the worker {name} to log 'ready.'", timeout=30)
    return proc


@contextmanager
def worker_process(
    env: dict[str, str], logs: Path, name: str = "worker", extra: Sequence[str] = ()
) -> Iterator[Proc]:
    """A Celery worker for the duration of the block."""
    proc = start_worker(env, logs, name, extra)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def beat_process(env: dict[str, str], logs: Path) -> Iterator[Proc]:
    """Celery beat publishing due jobs and sweeping, with its own schedule file."""
    schedule = logs / f"beat-{free_port()}.schedule"
    proc = Proc(
        f"beat-{free_port()}",
        python_argv("-m", "workers.cli", "beat", f"--schedule={schedule}"),
        env,
        logs,
    )
    try:
        yield proc
    finally:
        proc.stop()


def kill_group(proc: Proc) -> None:
    """SIGKILL a process and everything in its process group, by PID (a crash, not a stop)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait(timeout=10)


class PrivateRedis:
    """A redis-server of this test alone, on a free port, with persistence off."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        """Its broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.logs),
        ]
        self.proc = Proc(f"redis-{self.port}", argv, {}, self.logs)
        wait_until(self._answers, f"the private Redis on port {self.port} to answer PING")

    def crash(self) -> None:
        """SIGKILL the server: everything it held in memory is gone."""
        assert self.proc is not None
        kill_group(self.proc)
        self.proc = None

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False
