"""The per-tenant cap on non-terminal jobs (OWASP API4:2023, unrestricted resource use).

Counting a tenant's open jobs on every submit would cost an index walk per request, so each API
instance keeps the count it last read and what it has accepted since, and counts again (bounded
by the cap) once that figure is `RECOUNT_S` old or the submit would cross the cap. Jobs that
finish in between only make the kept figure high, never low: a submit near the cap is always
decided on a fresh count. Several instances can overshoot by what each accepted within
`RECOUNT_S` of a fresh count.
"""

from __future__ import annotations

import threading
import time
import uuid

from api.errors import ApiError
from store.db import Database
from store.open_jobs import count_open_jobs

RECOUNT_S = 2.0
RETRY_AFTER_S = 5


class OpenJobQuota:
    """At most `limit` non-terminal jobs per tenant; `limit == 0` switches the check off."""

    def __init__(self, limit: int, recount_s: float = RECOUNT_S) -> None:
        self.limit = limit
        self.recount_s = recount_s
        self._known: dict[uuid.UUID, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def admit(self, db: Database, tenant_id: uuid.UUID, adding: int) -> None:
        """Reserve room for `adding` jobs, or raise `429 quota_exceeded` (blocking: DB read)."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            known = self._known.get(tenant_id)
        if known is None or now - known[0] > self.recount_s or known[1] + adding > self.limit:
            with db.session() as session:
                known = (now, count_open_jobs(session, tenant_id, self.limit + 1))
        if known[1] + adding > self.limit:
            with self._lock:
                self._known[tenant_id] = known
            raise ApiError(
                429,
                "quota_exceeded",
                f"the tenant may have at most {self.limit} unfinished jobs",
                {"open_jobs": known[1], "adding": adding, "limit": self.limit},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        with self._lock:
            self._known[tenant_id] = (known[0], known[1] + adding)
