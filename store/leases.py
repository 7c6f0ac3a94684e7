"""Named leases with fencing tokens: who leads beat, until when, and proof of it in a write.

A lease is one row. Taking it (free or expired) bumps its token; renewing keeps the token and
moves the expiry. A write that must only happen under the lease calls `fence` in the same
transaction: a conditional UPDATE on the lease row that matches only while the holder's token
is current and unexpired, so a holder that was paused past its expiry (and maybe replaced)
commits nothing. Expiry is judged on the caller's clock (hosts keep time with NTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database
from store.models import Lease

RELEASED = datetime(1970, 1, 1, tzinfo=UTC)


class LeaseLost(Exception):
    """The lease is no longer held with this token (expired or taken over)."""


@dataclass(frozen=True)
class Held:
    """A lease this process holds: its token and until when (aware UTC)."""

    name: str
    holder: str
    token: int
    expires_at: datetime


def acquire(db: Database, name: str, holder: str, ttl_s: float, now: datetime) -> Held | None:
    """Take the lease if it is free, expired or already ours; None when another holds it.

    Taking it from nobody or from an expired holder bumps the fencing token.
    """
    expires = now + timedelta(seconds=ttl_s)
    with db.session() as session:
        token = session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at < now, Lease.holder == holder))
            .values(holder=holder, token=Lease.token + 1, expires_at=expires, acquired_at=now)
            .returning(Lease.token)
        ).scalar_one_or_none()
    if token is not None:
        return Held(name, holder, int(token), expires)
    try:
        with db.session() as session:
            session.execute(
                insert(Lease).values(
                    name=name, holder=holder, token=1, expires_at=expires, acquired_at=now
                )
            )
    except IntegrityError:
        return None  # the row exists and another holds it (or just took it)
    return Held(name, holder, 1, expires)


def renew(db: Database, held: Held, ttl_s: float, now: datetime) -> Held | None:
    """Extend a lease still held with this token; None when it was taken over meanwhile."""
    expires = now + timedelta(seconds=ttl_s)
    with db.session() as session:
        found = session.execute(
            update(Lease)
            .where(Lease.name == held.name, Lease.holder == held.holder, Lease.token == held.token)
            .values(expires_at=expires)
            .returning(Lease.token)
        ).scalar_one_or_none()
    return None if found is None else Held(held.name, held.holder, held.token, expires)


def fence(session: Session, held: Held, now: datetime) -> None:
    """In the caller's transaction, prove the lease is still ours; raise LeaseLost if not.

    On PostgreSQL the UPDATE also locks the lease row until the caller commits, so a takeover
    cannot slip in between this check and the write it guards.
    """
    result = session.execute(
        update(Lease)
        .where(
            Lease.name == held.name,
            Lease.holder == held.holder,
            Lease.token == held.token,
            Lease.expires_at > now,
        )
        .values(holder=held.holder)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(held.name)


def release(db: Database, held: Held) -> None:
    """Give the lease up (on a clean shutdown), so a successor need not wait for its expiry.

    The row stays, expired, so the next taker's token is still a larger one.
    """
    with db.session() as session:
        session.execute(
            update(Lease)
            .where(Lease.name == held.name, Lease.holder == held.holder, Lease.token == held.token)
            .values(expires_at=RELEASED)
        )
