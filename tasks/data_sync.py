"""The executor's side of data syncs: the `SyncStore` a data handler stores its pages through.

Each page is ONE transaction: the records' upsert (`store.records`) and the cursor's move
(`store.syncs`), fenced on the job that holds the sync. A worker killed between pages leaves
the cursor after the last committed page; the retry (or the next run) resumes there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from integrations.data.base import (
    Page,
    PageCounts,
    PullSource,
    SyncState,
    SyncTakenOver,
)
from integrations.errors import PermanentError
from integrations.outbound import check_url
from store.db import Database
from store.records import NewRecord, Scope, UpsertCounts, upsert_records
from store.secrets import SecretKeyMissing, SecretUnreadable, reveal_secret
from store.sources import get_source
from store.syncs import PageSaved, begin_sync, commit_without_flush, note_failure, save_page
from store.types import utcnow


def _counts(counts: UpsertCounts) -> PageCounts:
    return PageCounts(counts.fetched, counts.inserted, counts.updated, counts.unchanged)


@dataclass(frozen=True)
class DatabaseSyncStore:
    """`integrations.data.base.SyncStore` on our database, bound to one job and its tenant."""

    db: Database
    settings: Settings
    tenant_id: uuid.UUID
    job_id: uuid.UUID

    def _scope(self, provider: str, resource: str) -> Scope:
        return Scope(self.tenant_id, provider, resource)

    def begin(self, provider: str, resource: str) -> SyncState:
        """Take the sync for this job; see `store.syncs.begin_sync`."""
        with self.db.connection() as conn:
            row = begin_sync(conn, self._scope(provider, resource), self.job_id, utcnow())
        return SyncState(row.cursor, row.etag, row.last_modified, row.pages, _counts(row.counts))

    def store_page(self, provider: str, resource: str, page: Page) -> PageCounts:
        """Upsert the page's records and save the next cursor in one transaction."""
        scope = self._scope(provider, resource)
        now = utcnow()
        records = [NewRecord(r.key, r.canonical_json, r.content_hash) for r in page.records]
        with self.db.connection() as conn:
            commit_without_flush(conn)
            counts = upsert_records(conn, scope, self.job_id, records, now)
            saved = PageSaved(page.next_cursor, counts, page.etag, page.last_modified)
            if not save_page(conn, scope, self.job_id, saved, now):
                # Raised inside the transaction: this page's records roll back with it.
                raise SyncTakenOver(
                    f"another job took the {provider}/{resource} sync over", code="sync_taken_over"
                )
        return _counts(counts)

    def fail(self, provider: str, resource: str, message: str) -> None:
        """Note the failure on the sync; its cursor stays put."""
        with self.db.connection() as conn:
            note_failure(conn, self._scope(provider, resource), self.job_id, message, utcnow())

    def source(self, name: str) -> PullSource | None:
        """The tenant's pull source, its secret decrypted for this attempt only."""
        with self.db.session() as session:
            row = get_source(session, self.tenant_id, name)
            if row is None:
                return None
            config: dict[str, Any] = dict(row.config)
            secret_name = config.pop("secret", None)
            secret = None
            if secret_name:
                try:
                    secret = reveal_secret(session, self.settings, self.tenant_id, secret_name)
                except (SecretKeyMissing, SecretUnreadable) as exc:
                    raise PermanentError(str(exc), code="secret_unreadable") from exc
                if secret is None:
                    raise PermanentError(f"no secret named {secret_name!r}", code="unknown_secret")
        return PullSource(name=name, secret=secret, **config)


def sync_store_for(
    db: Database, settings: Settings, tenant_id: uuid.UUID, job_id: uuid.UUID
) -> DatabaseSyncStore:
    """The sync store the executor puts in a job's context."""
    return DatabaseSyncStore(db, settings, tenant_id, job_id)


def check_source_url(url: str, settings: Settings) -> None:
    """Raise ValueError when `url` is not an allowed outbound target (checked at config time
    too, so a tenant hears of it at once rather than from a failed job)."""
    check_url(url, allow_private=settings.outbound_allow_loopback)
