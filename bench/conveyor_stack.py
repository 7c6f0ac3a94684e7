"""Conveyor's processes for a benchmark: API, worker, beat, sandbox on one run's DB and prefix."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.jobs import EXTRA_JOB_TYPES
from bench.keyspace import REDIS_URL
from bench.procs import Proc, free_port, http_ok, python_argv, wait_until
from config.settings import Settings

START_TIMEOUT_S = 60.0
# Both systems log at WARNING: per-job INFO lines would make the figure a logging benchmark.
LOG_LEVEL = "WARNING"
# Scenarios without a sandbox point at the discard port: a job calling it fails at once.
NO_SANDBOX = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Site:
    """Where one scenario's Conveyor lives: its database, key prefix and sandbox."""

    database_url: str
    prefix: str
    sandbox_url: str = NO_SANDBOX
    extra: Mapping[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        """CONVEYOR_* variables for a process of this site (overrides: lower-case field names)."""
        values = {
            "database_url": self.database_url,
            "broker_url": REDIS_URL,
            "broker_key_prefix": self.prefix,
            "sandbox_url": self.sandbox_url,
            "extra_job_types": EXTRA_JOB_TYPES,
            "log_level": LOG_LEVEL,
            "log_json": "true",
            **self.extra,
            **overrides,
        }
        return {f"CONVEYOR_{key.upper()}": value for key, value in values.items()}

    def settings(self) -> Settings:
        """The same configuration, for code the benchmark runs in its own process."""
        return Settings(
            database_url=self.database_url,
            broker_url=REDIS_URL,
            broker_key_prefix=self.prefix,
            sandbox_url=self.sandbox_url,
            extra_job_types=EXTRA_JOB_TYPES,
        )


@contextmanager
def sandbox_process(logs: Path, latency_ms: int = 0) -> Iterator[str]:
    """The bundled sandbox providers on a free port; yields their base URL."""
    port = free_port()
    argv = python_argv("-m", "integrations.sandbox", "--port", str(port))
    proc = Proc(f"sandbox-{port}", [*argv, "--latency-ms", str(latency_ms)], {}, logs)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(http_ok(f"{url}/healthz"), f"the sandbox on port {port} to answer", watch=[proc])
        yield url
    finally:
        proc.stop()


@dataclass(frozen=True)
class Api:
    """A running API process and its base URL."""

    url: str
    proc: Proc


@contextmanager
def api_process(site: Site, logs: Path) -> Iterator[Api]:
    """The API served by uvicorn in its own process on a free port."""
    port = free_port()
    argv = python_argv("-m", "workers.cli", "api", "--port", str(port))
    proc = Proc(f"api-{port}", argv, site.env(), logs)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            http_ok(f"{url}/healthz"),
            f"the API on port {port} to answer /healthz",
            timeout=START_TIMEOUT_S,
            watch=[proc],
        )
        yield Api(url, proc)
    finally:
        proc.stop()


@contextmanager
def worker_process(
    site: Site, logs: Path, pool: str, concurrency: int, queues: str = "data", **overrides: str
) -> Iterator[Proc]:
    """A Conveyor worker on `queues`; the caller proves it consumes (a probe job)."""
    name = f"conveyor-worker-{free_port()}"
    argv = python_argv(
        "-m",
        "workers.cli",
        "worker",
        f"--queues={queues}",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--hostname={name}@%h",
    )
    proc = Proc(name, argv, site.env(**overrides), logs)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def beat_process(site: Site, logs: Path, **overrides: str) -> Iterator[Proc]:
    """Celery beat sending the maintenance tasks; a worker on `maintenance` must run them."""
    name = f"conveyor-beat-{free_port()}"
    schedule = logs / f"{name}.schedule"
    argv = python_argv("-m", "workers.cli", "beat", f"--schedule={schedule}")
    proc = Proc(name, argv, site.env(**overrides), logs)
    try:
        yield proc
    finally:
        proc.stop()
