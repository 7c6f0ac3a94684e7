"""What every scenario sets up the same way: a key prefix per system, and Conveyor on a fresh DB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import redis
import requests

from bench.conveyor_stack import NO_SANDBOX, Site
from bench.conveyor_store import prepare
from bench.cpu import tree_cpu_s
from bench.databases import fresh_database
from bench.keyspace import delete_prefixed, new_prefix
from bench.procs import Proc
from bench.runner import Measure, Options
from config.settings import Settings
from store.db import Database
from store.keys import IssuedKey


@contextmanager
def key_prefix(conn: redis.Redis, system: str) -> Iterator[str]:
    """A fresh Redis key prefix for one system; every key under it is deleted afterwards."""
    prefix = new_prefix(system)
    try:
        yield prefix
    finally:
        delete_prefixed(conn, prefix)


@dataclass(frozen=True)
class Conveyor:
    """Conveyor's side of a scenario: where it lives, its DB handle and an API key."""

    site: Site
    settings: Settings
    db: Database
    key: IssuedKey

    @property
    def tenant_id(self) -> uuid.UUID:
        """The bench tenant's id."""
        return self.key.tenant_id

    def http(self) -> requests.Session:
        """A keep-alive HTTP session (one client) carrying the API key."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key.secret}"
        return session


@contextmanager
def conveyor(
    opts: Options,
    conn: redis.Redis,
    sandbox_url: str = NO_SANDBOX,
    extra: Mapping[str, str] | None = None,
) -> Iterator[Conveyor]:
    """Conveyor on a fresh, migrated database with its own key prefix and a bench API key."""
    with (
        key_prefix(conn, "conveyor") as prefix,
        fresh_database(opts.db, opts.workdir, opts.postgres_url) as url,
    ):
        site = Site(url, prefix, sandbox_url, dict(extra or {}))
        settings = site.settings()
        db, key = prepare(settings)
        try:
            yield Conveyor(site, settings, db, key)
        finally:
            db.dispose()


def drop_queue(conn: redis.Redis, prefix: str, queue: str) -> Callable[[], None]:
    """Empty a kombu queue nobody consumes, so one run's backlog does not weigh on the next."""

    def drop() -> None:
        conn.delete(f"{prefix}{queue}")

    return drop


def sends_per_second(
    n: int, send: Callable[[int], None], after: Callable[[], None], server: Proc | None = None
) -> Measure:
    """A run that times `send(n)`: jobs per second, and CPU per job of this client and `server`.

    `after` tidies up, untimed.
    """

    def measure(_run: int) -> dict[str, float]:
        server_cpu = tree_cpu_s(server.pid) if server else 0.0
        client_cpu = time.process_time()
        started = time.perf_counter()
        send(n)
        elapsed = time.perf_counter() - started
        figures = {
            "throughput": n / elapsed,
            "client_cpu_ms_per_job": (time.process_time() - client_cpu) * 1000 / n,
        }
        if server:
            figures["server_cpu_ms_per_job"] = (tree_cpu_s(server.pid) - server_cpu) * 1000 / n
        after()
        return figures

    return measure
