"""Beat's leadership: take the lease, renew it every third of its length, know when it is lost."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime

import structlog

from store.db import Database
from store.leases import Held, acquire, release, renew

log = structlog.get_logger(__name__)

RENEW_FRACTION = 2 / 3  # renew once less than this share of the lease is left


def holder_id() -> str:
    """A name for this process that no other process (here or on another host) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """One process's claim on a named lease."""

    def __init__(self, db: Database, name: str, lease_s: float, holder: str | None = None):
        self.db = db
        self.name = name
        self.lease_s = lease_s
        self.holder = holder or holder_id()
        self.held: Held | None = None

    def ensure(self, now: datetime) -> Held | None:
        """The lease if this process holds it at `now` (renewed or taken as needed), else None."""
        if self.held is not None:
            left = (self.held.expires_at - now).total_seconds()
            if left > self.lease_s * RENEW_FRACTION:
                return self.held
            self.held = renew(self.db, self.held, self.lease_s, now)
            if self.held is None:
                log.warning("beat.lease_lost", holder=self.holder)
        if self.held is None:
            self.held = acquire(self.db, self.name, self.holder, self.lease_s, now)
            if self.held is not None:
                log.info("beat.leading", holder=self.holder, token=self.held.token)
        return self.held

    def lost(self) -> None:
        """Forget the lease (a fenced write found it gone)."""
        if self.held is not None:
            log.warning("beat.lease_lost", holder=self.holder, token=self.held.token)
        self.held = None

    def release(self) -> None:
        """Hand the lease back on a clean stop, so a follower takes over at once."""
        if self.held is not None:
            release(self.db, self.held)
            self.held = None
