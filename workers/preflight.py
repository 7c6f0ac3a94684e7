"""Checks a command makes before it starts anything, each failing with one line to print.

A `StartupProblem` says what is wrong, where (the port, the database file, the broker URL)
and the command that fixes it; the CLI prints it as it is, without a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from config.settings import Settings
from workers.ports import bind_error, holder_of, is_taken

DB_CONNECT_TIMEOUT_S = 5


class StartupProblem(RuntimeError):
    """Something outside the code keeps a command from starting; one line per problem."""

    exit_code = 1


@dataclass(frozen=True)
class Listener:
    """A port a process of the stack will listen on, and the setting that moves it."""

    what: str
    host: str
    port: int
    variable: str


def _bind_problem(item: Listener) -> str | None:
    error = bind_error(item.host, item.port)
    if error is None:
        return None
    if is_taken(error):
        return (
            f"port {item.port} ({item.what}, {item.host}:{item.port}) is taken by "
            f"{holder_of(item.port)}; stop it or set {item.variable}"
        )
    host_variable = item.variable.removesuffix("_PORT") + "_HOST"
    return (
        f"cannot listen on {item.host}:{item.port} for the {item.what} "
        f"({error.strerror or error}); set {host_variable} / {item.variable}"
    )


def check_ports(listeners: Sequence[Listener]) -> None:
    """Raise StartupProblem naming each listener whose port another process holds (and its
    holder), or whose address this machine cannot listen on."""
    problems = [problem for item in listeners if (problem := _bind_problem(item))]
    if problems:
        raise StartupProblem("\n".join(problems))


def explain_not_ready(settings: Settings, exited: Sequence[tuple[str, int]], fallback: str) -> str:
    """Why a started stack did not become ready, in terms a person can act on: a child that
    exited, else the broker or database gone since the checks, else `fallback`."""
    if exited:
        return "\n".join(
            f"{name} exited with code {code} during start-up (its output is above)"
            for name, code in exited
        )
    for check in (check_broker, check_database):
        try:
            check(settings)
        except StartupProblem as problem:
            return str(problem)
    return fallback


def stack_listeners(settings: Settings) -> list[Listener]:
    """The ports `conveyor up` listens on: API, sandbox and Flower."""
    return [
        Listener("API", settings.api_host, settings.api_port, "CONVEYOR_API_PORT"),
        Listener("sandbox", settings.sandbox_host, settings.sandbox_port, "CONVEYOR_SANDBOX_PORT"),
        Listener("Flower", settings.flower_host, settings.flower_port, "CONVEYOR_FLOWER_PORT"),
    ]


def check_own_listeners(listeners: Sequence[tuple[Listener, int | None]]) -> None:
    """Raise StartupProblem if a port that answered is held by a process other than ours.

    Closes the gap between `check_ports` and the children's bind: whatever answered the
    readiness checks must be the child started for it (pid given with each listener).
    """
    foreign = []
    for item, pid in listeners:
        holder = holder_of(item.port)
        if holder.pid is not None and pid is not None and holder.pid != pid:
            foreign.append((item, holder))
    if foreign:
        raise StartupProblem(
            "\n".join(
                f"port {item.port} ({item.what}) answered, but it is held by {holder}, not by "
                f"Conveyor's {item.what}; stop it or set {item.variable}"
                for item, holder in foreign
            )
        )


def safe_url(url: str) -> str:
    """A URL fit to print: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def sqlite_path(database_url: str) -> str | None:
    """The absolute file path of a SQLite URL; None for other databases or in-memory SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(url.database)


def where(database_url: str) -> str:
    """The database as a person looks for it: the SQLite file's path, or the URL sans password."""
    return sqlite_path(database_url) or make_url(database_url).render_as_string(hide_password=True)


def database_unreachable(database_url: str, exc: BaseException) -> StartupProblem:
    """The one-line problem for a database that refused or failed a connection."""
    return StartupProblem(
        f"cannot reach the database at {where(database_url)} ({_first_line(exc)}); start it "
        "or set CONVEYOR_DATABASE_URL"
    )


def check_database(settings: Settings) -> None:
    """Raise StartupProblem unless the database exists, answers and has the current schema.

    Never creates anything: a SQLite file that is not there is reported, not made.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from store.migrate import alembic_config

    url = settings.database_url
    path = sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise StartupProblem(
            f"no Conveyor database at {path} (CONVEYOR_DATABASE_URL={url}, relative to "
            f"{os.getcwd()}); run `conveyor migrate` to create it, or run from the project "
            "directory"
        )
    connect_args = {} if path else {"connect_timeout": DB_CONNECT_TIMEOUT_S}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        raise database_unreachable(url, exc) from None
    finally:
        engine.dispose()
    expected = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if not current:
        raise StartupProblem(
            f"the database at {where(url)} has no Conveyor tables; run `conveyor migrate`"
        )
    if current != expected:
        raise StartupProblem(
            f"the database at {where(url)} is at schema revision {', '.join(sorted(current))}, "
            f"this Conveyor needs {', '.join(sorted(expected))}; run `conveyor migrate`"
        )


def check_broker(settings: Settings) -> None:
    """Raise StartupProblem unless the Redis broker answers PING within the broker timeout."""
    url = settings.broker_url
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        return
    timeout = settings.broker_timeout_s
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupProblem(
            f"cannot reach the broker at {safe_url(url)} ({_first_line(exc)}); start Redis "
            "(`redis-server`) or set CONVEYOR_BROKER_URL"
        ) from None
    finally:
        client.close()
