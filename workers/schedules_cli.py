"""`conveyor schedules …`: list, show, create, pause, resume, trigger and delete a tenant's
schedules from a shell, under the same rules as the API (see `workers/schedule_ops.py`, imported
per command so the other `conveyor` commands start without it)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Manage a tenant's schedules.", no_args_is_help=True)
TenantOpt = Annotated[str, typer.Option(help="tenant name")]


@app.command("list")
def list_command(tenant: TenantOpt) -> None:
    """The built-ins and the tenant's schedules, one line each."""
    from workers import schedule_ops

    schedule_ops.list_schedules_of(tenant)


@app.command("show")
def show_command(name: str, tenant: TenantOpt) -> None:
    """One schedule as JSON: trigger, next five fire times, last run, failures."""
    from workers import schedule_ops

    schedule_ops.show(name, tenant)


@app.command("create")
def create_command(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option()],
    type: Annotated[str, typer.Option(help="job type, e.g. data.sandbox.fetch_rates")],
    payload: Annotated[str, typer.Option(help="the job's payload as JSON")] = "{}",
    cron: Annotated[str | None, typer.Option(help="5-field cron expression")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone of the cron")] = "UTC",
    interval_s: Annotated[float | None, typer.Option(help="or: every N seconds")] = None,
    misfire: Annotated[str, typer.Option(help="skip | run_once")] = "skip",
    overlap: Annotated[str, typer.Option(help="skip | allow")] = "allow",
    paused: Annotated[bool, typer.Option(help="create it paused")] = False,
) -> None:
    """Create a schedule, validated exactly as `POST /v1/schedules` validates it."""
    from workers import schedule_ops

    schedule_ops.create(
        tenant, name, type, payload, cron, timezone, interval_s, misfire, overlap, paused
    )


@app.command("pause")
def pause_command(name: str, tenant: TenantOpt) -> None:
    """Stop firing; slots passing meanwhile follow the misfire policy on resume."""
    from workers import schedule_ops

    schedule_ops.pause(name, tenant)


@app.command("resume")
def resume_command(name: str, tenant: TenantOpt) -> None:
    """Fire again."""
    from workers import schedule_ops

    schedule_ops.resume(name, tenant)


@app.command("trigger")
def trigger_command(name: str, tenant: TenantOpt) -> None:
    """Run the schedule's job once now, outside its slots; prints the job id."""
    from workers import schedule_ops

    schedule_ops.trigger(name, tenant)


@app.command("delete")
def delete_command(name: str, tenant: TenantOpt) -> None:
    """Delete a schedule and its run history (its jobs stay)."""
    from workers import schedule_ops

    schedule_ops.delete(name, tenant)
