"""The beat lease on real SQLite and PostgreSQL: one holder, takeover after expiry, fencing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from store.db import get_database
from store.leases import LeaseLost, acquire, fence, release, renew

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
