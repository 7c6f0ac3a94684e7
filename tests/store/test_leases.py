"""The beat lease on real SQLite and PostgreSQL: one holder, takeover after expiry, fencing, and
a holder frozen inside its transaction cut off by PostgreSQL."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from config.settings import Settings
from store.db import create_database, get_database
from store.leases import LeaseLost, acquire, fence, release, renew
from tests.conftest import make_settings

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_one_holder_at_a_time_and_a_bigger_token_after_takeover(settings: Settings) -> None:
    db = get_database(settings)
    # Given A holds the lease for 10 s
    a = acquire(db, "beat", "A", 10, T0)
    assert a is not None
    # When B tries before it expires, and again after
    early = acquire(db, "beat", "B", 10, T0 + timedelta(seconds=9))
    late = acquire(db, "beat", "B", 10, T0 + timedelta(seconds=11))
    # Then B gets it only after expiry, with a larger fencing token
    assert early is None
    assert late is not None and late.token > a.token
    # And A can neither renew nor pass the fence any more
    assert renew(db, a, 10, T0 + timedelta(seconds=12)) is None
    with db.session() as session, pytest.raises(LeaseLost):
        fence(session, a, T0 + timedelta(seconds=12))
    with db.session() as session:
        fence(session, late, T0 + timedelta(seconds=12))


def test_released_lease_is_taken_at_once_with_a_new_token(settings: Settings) -> None:
    db = get_database(settings)
    # Given A holds the lease and releases it on a clean stop
    a = acquire(db, "beat", "A", 10, T0)
    assert a is not None
    release(db, a)
    # When B asks a moment later
    b = acquire(db, "beat", "B", 10, T0 + timedelta(seconds=1))
    # Then B leads without waiting for the expiry, with a token A never had
    assert b is not None and b.token > a.token


def test_a_holder_frozen_inside_its_transaction_is_cut_off_and_the_lease_taken(
    postgres_url: str, broker_prefix: str
) -> None:
    s = make_settings(
        postgres_url,
        broker_prefix,
        db_idle_in_transaction_timeout_ms=500,
        db_lock_timeout_ms=200,
    )
    db = create_database(s)  # its own engine: these timeouts are set when a connection opens
    name = f"beat-{uuid.uuid4().hex[:8]}"
    try:
        # Given A holds a 1 s lease and freezes inside a firing's transaction, past the fence
        a = acquire(db, name, "A", 1, T0)
        assert a is not None
        frozen = db.sessions()
        fence(frozen, a, T0)
        # When B asks after A's lease expired (each try waits on the row lock A's session keeps)
        deadline = time.monotonic() + 5
        b = None
        while b is None and time.monotonic() < deadline:
            with contextlib.suppress(OperationalError):  # lock_timeout: A still holds the row
                b = acquire(db, name, "B", 1, T0 + timedelta(seconds=2))
        # Then the server ended A's idle transaction and B leads, with a larger token
        assert b is not None, "B never took over from a holder frozen in its transaction"
        assert b.token > a.token
        # And A, woken, commits nothing: its session is gone
        with pytest.raises(DBAPIError):
            frozen.commit()
        frozen.close()
    finally:
        db.dispose()
