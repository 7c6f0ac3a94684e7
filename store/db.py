"""One engine per process (re-made after fork) and the session scope around it.

Every round trip is bounded, so an unreachable database is an error within seconds, never a
hang: on PostgreSQL a connect timeout, the server's `statement_timeout` and `lock_timeout` (and
`idle_in_transaction_session_timeout`, so a paused process cannot keep its row locks), TCP
keepalives and `tcp_user_timeout` (a partition while data is unacknowledged), a bounded ping
before a pooled connection is reused, and the client-side watchdog (`store.watchdog`) for a
reply that never comes; on SQLite the busy timeout; on both a short wait for a pooled
connection (`CONVEYOR_DB_POOL_TIMEOUT_S`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store.watchdog import RoundTripWatchdog

SQLITE_SYNCHRONOUS = {"FULL": "FULL", "NORMAL": "NORMAL", "EXTRA": "EXTRA"}
# A reply later than the statement timeout plus this is cut by the watchdog (seconds).
ROUND_TRIP_MARGIN_S = 1.0
# The ping before a pooled connection is reused answers within this, or the connection is
# replaced (one retry before the transaction starts).
PING_BOUND_S = 1.0
# TCP keepalives on idle connections: first probe after 10 s, then every 3 s, dead after 3.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


def round_trip_bound_s(settings: Settings) -> float:
    """How long one PostgreSQL round trip may take before it is cut (seconds)."""
    return settings.db_statement_timeout_ms / 1000 + ROUND_TRIP_MARGIN_S


def postgres_connect_args(settings: Settings) -> dict[str, Any]:
    """libpq parameters bounding connect, statements, lock waits, idle transactions, dead peers."""
    options = (
        f"-c statement_timeout={settings.db_statement_timeout_ms} "
        f"-c lock_timeout={settings.db_lock_timeout_ms} "
        f"-c idle_in_transaction_session_timeout={settings.db_idle_in_transaction_timeout_ms}"
    )
    return {
        "connect_timeout": settings.db_connect_timeout_s,
        "options": options,
        "tcp_user_timeout": int(round_trip_bound_s(settings) * 1000),
        **KEEPALIVES,
    }


def _bound_round_trips(engine: Engine, watchdog: RoundTripWatchdog) -> None:
    """Arm the watchdog around every statement, commit, rollback, reset and ping."""

    def _dbapi(conn: Connection) -> Any:
        return conn.connection.dbapi_connection

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Connection, *_: Any) -> None:
        watchdog.arm(_dbapi(conn))

    @event.listens_for(engine, "after_cursor_execute")
    def _disarm(conn: Connection, *_: Any) -> None:
        watchdog.disarm(_dbapi(conn))

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _arm_ending(conn: Connection) -> None:
        watchdog.arm(_dbapi(conn))  # disarmed at check-in, right after

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.connection is not None and not context.connection.closed:
            watchdog.disarm(_dbapi(context.connection))

    @event.listens_for(engine, "reset")
    def _arm_reset(dbapi_connection: Any, *_: Any) -> None:
        watchdog.arm(dbapi_connection)

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, *_: Any) -> None:
        watchdog.disarm(dbapi_connection)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # A new connection's first round trips are not statements the events above see:
        # SQLAlchemy's dialect initialisation (server version, settings) runs on it unobserved,
        # once per engine and under the pool's first-connect mutex. A partition that begins
        # right after the handshake would block that thread, and every thread queued behind
        # the mutex, for as long as it lasts. Armed here, the cut comes after `bound_s`; the
        # checkout ping re-arms and disarms it before the caller's transaction.
        dbapi_connection = dialect.connect(*cargs, **cparams)
        watchdog.arm(dbapi_connection)
        return dbapi_connection

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, *_: Any) -> None:
        # SQLAlchemy's pool_pre_ping, with a short bound: the pool replaces a connection that
        # fails it once (DisconnectionError) before the caller's transaction begins.
        watchdog.arm(dbapi_connection, PING_BOUND_S)
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc
        finally:
            watchdog.disarm(dbapi_connection)


@dataclass(frozen=True)
class Database:
    """An engine and its session factory, owned by exactly one process."""

    engine: Engine
    sessions: sessionmaker[Session]
    pid: int
    # SQLite admits one writer: threads of one process queue here instead of in SQLite's
    # busy handler, whose sleeps grow to tens of milliseconds under contention.
    write_lock: AbstractContextManager[Any] = field(default_factory=nullcontext)
    # The URL as configured, so looking this database up per call needs no URL parsing.
    source_url: str = ""

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.write_lock:
            session = self.sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in one transaction, committed on success: for the hot path's
        prebuilt statements, which need none of the ORM session's bookkeeping."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection of this engine."""
        self.engine.dispose()


def is_sqlite(url: str) -> bool:
    """Whether a database URL names SQLite."""
    return url.startswith("sqlite")


def _sqlite_file(url: str) -> str | None:
    path = url.split("///", 1)[1] if "///" in url else ""
    return path or None


def create_database(settings: Settings) -> Database:
    """Build the engine for `settings.database_url` with the pragmas and pool it needs."""
    url = settings.database_url
    kwargs: dict[str, Any] = {"future": True}
    if is_sqlite(url):
        path = _sqlite_file(url)
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
        }
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        from sqlalchemy.pool import QueuePool

        kwargs["poolclass"] = QueuePool
    else:
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_pool_size
        kwargs["connect_args"] = postgres_connect_args(settings)
    kwargs["pool_timeout"] = settings.db_pool_timeout_s
    engine = create_engine(url, **kwargs)
    if not is_sqlite(url):
        _bound_round_trips(engine, RoundTripWatchdog(round_trip_bound_s(settings)))
    if is_sqlite(url):
        busy_ms = settings.sqlite_busy_timeout_ms
        synchronous = SQLITE_SYNCHRONOUS[settings.sqlite_synchronous.upper()]

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            # FULL: a committed job survives a power cut, not just a process crash. Workers may
            # run NORMAL (see CONVEYOR_WORKER_SQLITE_SYNCHRONOUS): what they write the sweeper
            # can re-derive, and keyed provider calls make a re-run harmless.
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

    sessions = sessionmaker(engine, expire_on_commit=False)
    lock: AbstractContextManager[Any] = threading.RLock() if is_sqlite(url) else nullcontext()
    return Database(
        engine=engine, sessions=sessions, pid=os.getpid(), write_lock=lock, source_url=url
    )


_lock = threading.Lock()
_current: Database | None = None


def get_database(settings: Settings) -> Database:
    """This process's database; a forked child gets a fresh engine, never its parent's sockets."""
    global _current
    with _lock:
        db = _current
        if db is None or db.pid != os.getpid() or db.source_url != settings.database_url:
            if db is not None and db.pid == os.getpid():
                db.dispose()
            _current = db = create_database(settings)
        return db


def reset_database() -> None:
    """Forget this process's engine (after fork, or between tests)."""
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            _current.dispose()
        _current = None
