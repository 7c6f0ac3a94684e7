"""`conveyor keys create|list|revoke|rotate`: API keys with roles, expiry and last use."""

from __future__ import annotations

import getpass
from datetime import datetime, timedelta
from typing import Annotated

import typer

from config.settings import Settings, get_settings
from store.db import Database, get_database
from store.keys import (
    audit_key_change,
    create_api_key,
    find_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from store.models import ApiKey
from store.roles import Role
from store.types import utcnow
from tasks.names import key_days_refusal, name_refusal, text_refusal

keys_app = typer.Typer(help="Manage API keys (tenant, operator, admin).", no_args_is_help=True)


def _database(settings: Settings) -> Database:
    """The database, once it is known to exist at the current schema (else one clear line)."""
    from workers.preflight import check_database

    check_database(settings)
    return get_database(settings)


def refuse(option: str, reason: str | None) -> None:
    """Exit 2 with one line naming the option when `reason` says why its value is refused."""
    if reason is not None:
        typer.echo(f"conveyor: {option}: {reason}", err=True)
        raise typer.Exit(2)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="tenant name (created when new)")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
    role: Annotated[Role, typer.Option(help="tenant, operator or admin")] = Role.TENANT,
    expires_in_days: Annotated[
        float | None, typer.Option(help="the key stops working after this many days")
    ] = None,
) -> None:
    """Issue an API key; the secret is printed once (on stdout, alone)."""
    # The API's rules (api/admin_keys.py), checked before the database is touched.
    refuse("--tenant", name_refusal(tenant))
    refuse("--name", name_refusal(name, required=False))
    if expires_in_days is not None:
        refuse("--expires-in-days", key_days_refusal(expires_in_days))
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with _database(get_settings()).session() as session:
        issued = create_api_key(session, tenant, name, role, expires)
        key = session.get(ApiKey, issued.key_id)
        assert key is not None
        audit_key_change(session, key, _actor(), "key.create")
    typer.echo(issued.secret)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
) -> None:
    """Every key: prefix, tenant, role, created, expires, last used, revoked (never secrets)."""
    if tenant is not None:
        refuse("--tenant", text_refusal(tenant))
    with _database(get_settings()).session() as session:
        keys = list_keys(session, tenant)
    typer.echo(
        f"{'id':<36}  {'prefix':<10}  {'tenant':<20}  {'role':<8}  {'expires':<20}  "
        f"{'last used':<20}  status"
    )
    for k in keys:
        status = "revoked" if k.revoked_at else "active"
        if k.expires_at and k.expires_at <= utcnow() and not k.revoked_at:
            status = "expired"
        typer.echo(
            f"{k.key_id!s:<36}  {k.prefix:<10}  {k.tenant_name:<20}  {k.role.value:<8}  "
            f"{_when(k.expires_at):<20}  {_when(k.last_used_at):<20}  {status}"
        )


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="key id or prefix")]) -> None:
    """Revoke a key: every API instance refuses it within one second."""
    with _database(get_settings()).session() as session:
        found = find_key(session, key)
        if found is None:
            typer.echo(f"conveyor: no key {key!r}", err=True)
            raise typer.Exit(1)
        changed = revoke_key(session, found, _actor())
    typer.echo("revoked" if changed else "already revoked")


@keys_app.command("rotate")
def keys_rotate(key: Annotated[str, typer.Argument(help="key id or prefix")]) -> None:
    """Issue a replacement (same tenant, role, expiry), revoke the old key; prints the new one."""
    with _database(get_settings()).session() as session:
        found = find_key(session, key)
        if found is None or found.revoked_at is not None:
            typer.echo(f"conveyor: no active key {key!r}", err=True)
            raise typer.Exit(1)
        issued = rotate_key(session, found, _actor())
    typer.echo(issued.secret)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"
