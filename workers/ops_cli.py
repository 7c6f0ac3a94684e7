"""On-call chores from the shell: `conveyor jobs|queues|providers|audit` (the console's twins).

They read and act on the database directly, across tenants, and audit every action as
`cli:<user>`. Replay is a dry run unless `--yes` is given.
"""

from __future__ import annotations

import getpass
import uuid
from types import ModuleType
from typing import Annotated

import typer

from config.celery import QUEUES
from config.settings import Settings, get_settings
from store.backlog import QueueBacklog, queue_backlog, stuck_counts
from store.db import Database, get_database
from store.keys import ensure_tenant
from store.ops import OpsFilter, audit_log, find_jobs, job_with_attempts
from store.states import ErrorClass, JobState
from store.types import utcnow
from tasks.names import text_refusal
from workers.keys_cli import keys_app, refuse


# `tasks` loads the job-type registry, which reads settings: imported when a command runs, so
# an invalid setting reaches `conveyor`'s one-line error handling instead of a traceback.
def _ops() -> ModuleType:
    from tasks import ops

    return ops


def _providers() -> ModuleType:
    from tasks import providers

    return providers


jobs_app = typer.Typer(help="Find, inspect, retry, cancel and replay jobs.", no_args_is_help=True)
OPS_TENANT = "operations"


def _database(settings: Settings) -> Database:
    """The database, once it is known to exist at the current schema (else one clear line)."""
    from workers.preflight import check_database

    check_database(settings)
    return get_database(settings)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _filter(
    state: str | None,
    type_: str | None,
    provider: str | None,
    error_class: str | None,
    tenant: str | None,
) -> OpsFilter:
    """The filter, once every option names something that exists (else exit 2 naming it)."""
    _one_of("--state", state, [s.value for s in JobState])
    _one_of("--error-class", error_class, [c.value for c in ErrorClass])
    known = _providers().providers()
    _one_of("--provider", provider, list(known))
    _one_of("--type", type_, sorted(t for types in known.values() for t in types))
    if tenant is not None:
        refuse("--tenant", text_refusal(tenant))
    types = known.get(provider, ()) if provider else None
    return OpsFilter(state, type_, types, error_class, tenant)


def _one_of(option: str, value: str | None, valid: list[str]) -> None:
    if value is not None and value not in valid:
        refuse(option, f"must be one of {', '.join(valid)} (not {value!r})")


StateOpt = Annotated[str | None, typer.Option("--state", help="queued, dead, needs_review, …")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="job type")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="provider name")]
ClassOpt = Annotated[str | None, typer.Option("--error-class", help="transient, declined, …")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="tenant name")]


@jobs_app.command("list")
def jobs_list(
    state: StateOpt = None,
    type_: TypeOpt = None,
    provider: ProviderOpt = None,
    error_class: ClassOpt = None,
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Jobs of every tenant matching the filter, newest first."""
    flt = _filter(state, type_, provider, error_class, tenant)
    with _database(get_settings()).session() as session:
        for job, name in find_jobs(session, flt, limit):
            typer.echo(
                f"{job.id}  {name:<16}  {job.type:<28}  {job.state:<17}  "
                f"{job.error_class or '-':<16}  attempts {job.attempts}"
            )


@jobs_app.command("show")
def jobs_show(job_id: uuid.UUID) -> None:
    """One job and its attempts (errors only: excerpts stay in the console)."""
    with _database(get_settings()).session() as session:
        found = job_with_attempts(session, job_id)
        if found is None:
            typer.echo(f"conveyor: no job {job_id}", err=True)
            raise typer.Exit(1)
        job, tenant = found
        typer.echo(f"job {job.id}  tenant {tenant}  type {job.type}  state {job.state}")
        typer.echo(f"error class {job.error_class or '-'}  correlation id {job.correlation_id}")
        for a in job.attempt_rows:
            typer.echo(
                f"  #{a.number} {a.started_at:%H:%M:%S} {a.outcome:<10} http {a.http_status} "
                f"{a.latency_ms} ms {a.error_class or ''} {a.error_message or ''}"
            )


@jobs_app.command("retry")
def jobs_retry(job_id: uuid.UUID) -> None:
    """Queue one dead, failed or needs_review job again (audited)."""
    settings = get_settings()
    typer.echo(_ops().retry(_database(settings), settings, job_id, _actor()))


@jobs_app.command("cancel")
def jobs_cancel(job_id: uuid.UUID) -> None:
    """Cancel a waiting job, or ask a running one to stop (audited)."""
    settings = get_settings()
    typer.echo(_ops().cancel(_database(settings), settings, job_id, _actor()))


@jobs_app.command("replay")
def jobs_replay(
    state: StateOpt = "dead",
    type_: TypeOpt = None,
    provider: ProviderOpt = None,
    error_class: ClassOpt = None,
    tenant: TenantOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="replay for real (else a dry run)")] = False,
) -> None:
    """Replay the jobs matching a filter: a dry run (count) unless --yes."""
    flt = _filter(state, type_, provider, error_class, tenant)
    settings = get_settings()
    db = _database(settings)
    if not _ops().replayable(flt):
        typer.echo("conveyor: --state must be dead, failed or needs_review", err=True)
        raise typer.Exit(2)
    if not yes:
        preview = _ops().dry_run(db, settings, flt)
        typer.echo(
            f"dry run: {len(preview.replayed)} job(s) would be replayed, "
            f"{len(preview.withheld)} withheld, of {preview.matched} matched (--yes)"
        )
        for job_id, refusal in preview.reasons.items():
            typer.echo(f"  withheld {job_id}: {refusal.code}")
        return
    done = _ops().replay_group(db, settings, flt, _actor())
    typer.echo(
        f"replayed {len(done.replayed)} of {done.matched} job(s); withheld {len(done.withheld)}"
    )


def queues() -> None:
    """Each queue's backlog in the database: queued, oldest age, due, scheduled, running."""
    with _database(get_settings()).session() as session:
        found = {b.queue: b for b in queue_backlog(session, utcnow())}
        stuck = sum(s.count for s in stuck_counts(session))
    typer.echo(f"{'queue':<12} queued  oldest_s    due  scheduled  running")
    for name in sorted({*QUEUES, *found}):
        b = found.get(name, QueueBacklog(name))
        typer.echo(
            f"{name:<12} {b.queued:>6}  {b.oldest_queued_age_s:>8.0f}  {b.due:>5}  "
            f"{b.scheduled:>9}  {b.running:>7}"
        )
    typer.echo(f"dead or needs_review: {stuck}")


def status() -> None:
    """Is every queue with work consumed? Each queue's work, live consumers and verdict.

    Exits 1 when a queue has work and no live consumer, or none that took a message recently.
    """
    from redis import RedisError

    from tasks.queue_health import check_queues
    from workers.preflight import StartupProblem, check_broker

    settings = get_settings()
    _database(settings)
    check_broker(settings)
    try:
        health = check_queues(settings)
    except RedisError as exc:
        raise StartupProblem(
            f"cannot read worker heartbeats from Redis ({type(exc).__name__}); "
            "check CONVEYOR_GUARD_REDIS_URL"
        ) from None
    typer.echo(
        f"{'queue':<12} {'verdict':<12} queued  in_broker  oldest_s  consumers  last_consumed_s"
    )
    for q in health:
        broker = "?" if q.in_broker is None else str(q.in_broker)
        last = "-" if q.last_consumed_s is None else f"{q.last_consumed_s:.1f}"
        typer.echo(
            f"{q.queue:<12} {q.verdict.value:<12} {q.queued:>6}  {broker:>9}  "
            f"{q.oldest_queued_age_s:>8.0f}  {len(q.consumers):>9}  {last:>15}"
        )
    workers = sorted({w for q in health for w in q.consumers})
    typer.echo(f"live consumers: {', '.join(workers) if workers else 'none'}")
    waiting = [q for q in health if not q.ready]
    for q in waiting:
        why = "no live consumer" if q.verdict.value == "no_consumer" else "consumers took nothing"
        typer.echo(f"NOT READY: queue {q.queue} has {q.queued} queued job(s) and {why}")
    if waiting:
        raise typer.Exit(1)


def providers_cmd(
    close: Annotated[str | None, typer.Option(help="close this provider's breaker")] = None,
) -> None:
    """Each provider's circuit breaker; --close NAME closes one by hand (audited)."""
    settings = get_settings()
    db = _database(settings)
    if close is not None:
        if close not in _providers().providers():
            typer.echo(f"conveyor: no provider {close!r}", err=True)
            raise typer.Exit(1)
        from redis import RedisError

        from workers.preflight import StartupProblem

        with db.session() as session:
            tenant_id = ensure_tenant(session, OPS_TENANT).id
        try:
            _ops().close_provider_breaker(db, settings, close, _actor(), tenant_id)
        except RedisError as exc:
            raise StartupProblem(
                f"cannot close the breaker: Redis is not answering ({type(exc).__name__}); "
                "check CONVEYOR_GUARD_REDIS_URL"
            ) from None
    for status in _providers().provider_statuses(settings):
        limit = status.rate_limit or "none"
        types = ", ".join(status.job_types)
        typer.echo(f"{status.provider:<10} breaker {status.breaker:<9} limit {limit:<8} {types}")


def audit(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """The latest audit events of every tenant, newest first."""
    with _database(get_settings()).session() as session:
        for event, tenant in audit_log(session, limit):
            typer.echo(
                f"{event.created_at:%Y-%m-%d %H:%M:%S}  {tenant:<16}  {event.actor:<40}  "
                f"{event.action:<18}  {event.job_id or ''}"
            )


def register(app: typer.Typer) -> None:
    """Add `keys`, `jobs`, `queues`, `status`, `providers` and `audit` to `conveyor`."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(jobs_app, name="jobs")
    app.command("queues")(queues)
    app.command("status")(status)
    app.command("providers")(providers_cmd)
    app.command("audit")(audit)
