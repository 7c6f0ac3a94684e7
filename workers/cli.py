"""The `conveyor` command: start the stack or one process of it, and do ops chores."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from config.celery import QUEUES
from config.settings import Settings, get_settings
from workers.ops_cli import register as register_ops_commands
from workers.schedules_cli import app as schedules_app

app = typer.Typer(help="Conveyor: background jobs and integration workers.", no_args_is_help=True)
register_ops_commands(app)
app.add_typer(schedules_app, name="schedules")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from store.migrate import upgrade
    from workers.preflight import database_unreachable, where

    settings = get_settings()
    try:
        upgrade(settings)
    except OperationalError as exc:
        raise database_unreachable(settings.database_url, exc) from None
    typer.echo(f"migrated {where(settings.database_url)}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from workers.preflight import Listener, check_database, check_ports

    settings = _settings_to_start()
    host, port = host or settings.api_host, port or settings.api_port
    check_ports([Listener("API", host, port, "CONVEYOR_API_PORT")])
    check_database(settings)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues")] = ",".join(QUEUES),
    concurrency: Annotated[int | None, typer.Option()] = None,
    pool: Annotated[str | None, typer.Option(help="threads, prefork, solo")] = None,
    hostname: Annotated[str, typer.Option()] = "conveyor@%h",
) -> None:
    """Run a Celery worker consuming the given queues."""
    from workers.preflight import check_broker, check_database

    settings = _settings_to_start()
    check_database(settings)
    check_broker(settings)
    # What a worker writes the sweeper can re-derive: it may trade fsyncs for speed on SQLite.
    os.environ["CONVEYOR_SQLITE_SYNCHRONOUS"] = settings.worker_sqlite_synchronous
    get_settings.cache_clear()
    from workers.app import app as celery_app

    settings = get_settings()
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--pool={pool or settings.worker_pool}",
        f"--hostname={hostname}",
        f"--loglevel={settings.log_level}",
    ]
    if settings.worker_task_events:
        argv.append("--task-events")
    from workers.exitcode import run_worker

    raise typer.Exit(run_worker(lambda: celery_app.worker_main(argv)))


@app.command()
def beat(
    schedule: Annotated[Path, typer.Option(help="beat's state file")] = Path(
        "var/celerybeat-schedule"
    ),
) -> None:
    """Run beat: whichever beat holds the lease fires due schedules (maintenance included)."""
    from workers.preflight import check_broker, check_database

    settings = _settings_to_start()
    check_database(settings)
    check_broker(settings)
    from workers.app import app as celery_app

    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--schedule={schedule}", f"--loglevel={settings.log_level}"])


@app.command()
def flower(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run Flower, always behind basic auth (CONVEYOR_FLOWER_USER / _PASSWORD)."""
    from workers.flower import require_credentials, run_flower
    from workers.preflight import Listener, check_broker, check_ports

    settings = _settings_to_start()
    try:
        credentials = require_credentials(settings)
    except ValueError as exc:
        typer.echo(f"conveyor: {exc}", err=True)
        raise typer.Exit(2) from None
    host, port = host or settings.flower_host, port or settings.flower_port
    check_ports([Listener("Flower", host, port, "CONVEYOR_FLOWER_PORT")])
    check_broker(settings)
    from workers.app import app as celery_app

    run_flower(celery_app, host, port, credentials, settings.broker_url)


@app.command()
def sandbox(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    latency_ms: Annotated[int, typer.Option()] = 0,
) -> None:
    """Run the bundled sandbox providers (data API and PSP)."""
    from workers.preflight import Listener, check_ports

    settings = get_settings()
    host, port = host or settings.sandbox_host, port or settings.sandbox_port
    if port:  # 0 picks a free port
        check_ports([Listener("sandbox", host, port, "CONVEYOR_SANDBOX_PORT")])
    argv = [
        sys.executable,
        "-m",
        "integrations.sandbox",
        "--host",
        host,
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
    ]
    os.execv(sys.executable, argv)  # noqa: S606  (replace this process with the sandbox)


@app.command()
def demo(
    api_key: Annotated[str, typer.Option(envvar="CONVEYOR_DEMO_API_KEY")],
    api_url: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Submit sample jobs to a running stack and print their outcomes."""
    import requests

    from workers.demo import run_demo
    from workers.preflight import StartupProblem

    settings = get_settings()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    try:
        ok = run_demo(url, api_key)
    except requests.ConnectionError:
        raise StartupProblem(
            f"cannot reach the API at {url}; start the stack with `conveyor up` (or pass --api-url)"
        ) from None
    except requests.HTTPError as exc:
        raise StartupProblem(
            f"the API at {url} answered {exc.response.status_code} to the demo; "
            "pass a key from `conveyor keys create --tenant demo`"
        ) from None
    if not ok:
        raise typer.Exit(1)


@app.command()
def reconcile() -> None:
    """Compare payments under review and recent charges with the providers; print findings."""
    from tasks.reconcile import reconcile as run_reconcile
    from workers.preflight import check_database

    check_database(get_settings())
    findings = run_reconcile(get_settings())
    for finding in findings:
        typer.echo(f"{finding.kind:<22} job {finding.job_id}  {finding.details}")
    typer.echo(f"{len(findings)} finding(s)")


@app.command()
def up(
    run_demo: Annotated[bool, typer.Option("--demo/--no-demo", help="submit demo jobs")] = True,
    exit_after_demo: Annotated[
        bool, typer.Option(help="stop the stack once the demo has run (for scripts)")
    ] = False,
) -> None:
    """Migrate, then run API, worker, beat, Flower and the sandbox as one supervised group."""
    from workers.stack import run_stack

    raise typer.Exit(run_stack(_settings_to_start(), run_demo, exit_after_demo))


def _settings_to_start() -> Settings:
    """The settings a long-running process starts with, refused when unsafe for CONVEYOR_ENV."""
    from config.production import require_safe_settings

    settings = get_settings()
    require_safe_settings(settings)
    return settings


def generate_password() -> str:
    """A random password for dev credentials."""
    return secrets.token_urlsafe(12)


def _settings_errors(exc: ValidationError) -> str:
    # Name each variable and what is wrong with it, never the value (it may be a secret).
    return "; ".join(
        f"CONVEYOR_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        for error in exc.errors()
    )


def main() -> None:
    """The `conveyor` console script: a problem of set-up or environment is printed as one line
    per problem on stderr, prefixed `conveyor:`, with no traceback (exit 2: settings, 1: the
    environment); anything else is a bug and keeps its traceback."""
    from config.celery import UnsafeDeliveryConfig
    from config.production import InsecureSettings
    from workers.preflight import StartupProblem

    try:
        app()
    except ValidationError as exc:
        typer.echo(f"conveyor: invalid settings: {_settings_errors(exc)}", err=True)
        raise SystemExit(2) from None
    except (InsecureSettings, UnsafeDeliveryConfig) as exc:
        typer.echo(f"conveyor: {exc}", err=True)
        raise SystemExit(2) from None
    except StartupProblem as exc:
        for line in str(exc).splitlines():
            typer.echo(f"conveyor: {line}", err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
