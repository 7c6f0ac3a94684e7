"""The `conveyor` command: start the stack or one process of it, and do ops chores."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from config.celery import QUEUES
from config.settings import get_settings
from workers.ops_cli import register as register_ops_commands

app = typer.Typer(help="Conveyor: background jobs and integration workers.", no_args_is_help=True)
register_ops_commands(app)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from store.migrate import upgrade

    settings = get_settings()
    upgrade(settings)
    typer.echo(f"migrated {_safe_url(settings.database_url)}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
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
    settings = get_settings()
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
    celery_app.worker_main(argv)


@app.command()
def beat(
    schedule: Annotated[Path, typer.Option(help="beat's state file")] = Path(
        "var/celerybeat-schedule"
    ),
) -> None:
    """Run Celery beat: publishes due jobs and sweeps orphans."""
    from workers.app import app as celery_app

    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--schedule={schedule}", f"--loglevel={get_settings().log_level}"])


@app.command()
def flower(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run Flower, always behind basic auth (CONVEYOR_FLOWER_USER / _PASSWORD)."""
    from workers.flower import require_credentials, run_flower

    settings = get_settings()
    try:
        credentials = require_credentials(settings)
    except ValueError as exc:
        typer.echo(f"conveyor: {exc}", err=True)
        raise typer.Exit(2) from None
    from workers.app import app as celery_app

    host, port = host or settings.flower_host, port or settings.flower_port
    run_flower(celery_app, host, port, credentials, settings.broker_url)


@app.command()
def sandbox(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    latency_ms: Annotated[int, typer.Option()] = 0,
) -> None:
    """Run the bundled sandbox providers (data API and PSP)."""
    settings = get_settings()
    argv = [
        sys.executable,
        "-m",
        "integrations.sandbox",
        "--host",
        host or settings.sandbox_host,
        "--port",
        str(port or settings.sandbox_port),
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
    from workers.demo import run_demo

    settings = get_settings()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    if not run_demo(url, api_key):
        raise typer.Exit(1)


@app.command()
def reconcile() -> None:
    """Compare payments under review and recent charges with the providers; print findings."""
    from tasks.reconcile import reconcile as run_reconcile

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

    raise typer.Exit(run_stack(get_settings(), run_demo, exit_after_demo))


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def generate_password() -> str:
    """A random password for dev credentials."""
    return secrets.token_urlsafe(12)


if __name__ == "__main__":
    app()
