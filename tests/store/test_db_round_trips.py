"""The client-side bound on PostgreSQL round trips, through a TCP proxy that can drop packets."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from store.db import Database, get_database, round_trip_bound_s
from tests.conftest import make_settings
from tests.support.proxy import Proxy


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A TCP proxy in front of PostgreSQL."""
    with Proxy("127.0.0.1", 5432) as p:
        yield p


@pytest.fixture
def through_proxy(postgres_url: str, broker_prefix: str, proxy: Proxy) -> Settings:
    """This run's PostgreSQL database reached through the proxy, with a 0.5 s statement bound."""
    url = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    return make_settings(
        url, f"{broker_prefix}{uuid.uuid4().hex[:6]}:", db_statement_timeout_ms=500
    )


def _first_query(db: Database, out: dict[str, Any]) -> None:
    started = time.monotonic()
    try:
        with db.connection() as conn:
            conn.execute(text("SELECT 1"))
        out["error"] = None
    except OperationalError as exc:
        out["error"] = exc
    out["took_s"] = time.monotonic() - started


def test_a_partition_right_after_the_handshake_is_cut_at_the_round_trip_bound(
    through_proxy: Settings, proxy: Proxy
) -> None:
    # Given a fresh engine whose first connection's handshake succeeds, and a partition that
    # begins before SQLAlchemy's dialect initialisation queries run on it
    db = get_database(through_proxy)
    event.listen(db.engine, "connect", lambda *_: proxy.blackhole(), insert=True, once=True)
    bound_s = round_trip_bound_s(through_proxy)
    # When two threads use the database (the second waits on the pool's first-connect mutex)
    results: list[dict[str, Any]] = [{}, {}]
    threads = [threading.Thread(target=_first_query, args=(db, r)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then neither is left hanging: the first is cut at the bound, the second answers too
    assert not any(thread.is_alive() for thread in threads), "a thread is still blocked"
    first = min(results, key=lambda r: r["took_s"])
    assert isinstance(first["error"], OperationalError), results
    assert first["took_s"] < bound_s + 5, results
    # And once the network heals, the same engine works
    proxy.heal()
    with db.connection() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
