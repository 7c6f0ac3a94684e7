"""The page loop every data provider runs: resume at the cursor, store each page, stop in time.

A run takes the sync (`SyncStore.begin`), resumes at the saved cursor, and stores every page
through `SyncStore.store_page`, which commits the records and the next cursor together. It
ends after the last page (the pass is complete) or after `max_pages` (a success; the next run
goes on from the saved cursor). When the attempt's deadline leaves no room for another page it
raises `Deferred`: the job waits `CONTINUE_AFTER_S` and its next attempt, not counted against
`max_attempts` (a continuation, not a failure), resumes from the cursor; the job's retry age
still bounds it. A failure is noted on the sync and raised with its class unchanged.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from integrations.base import JobContext, Outcome, Succeeded
from integrations.data.base import Page, PageCounts, PageRequest, SyncState, SyncStore
from integrations.errors import Deferred, IntegrationError, PermanentError

# Room left before the deadline for one more page: at least this, or twice the slowest page.
PAGE_MARGIN_S = 1.0
# Cancellation is a DB read: asked before the first page, then at most this often.
CANCEL_CHECK_S = 1.0
CONTINUE_AFTER_S = 0.0

Fetch = Callable[[PageRequest], Page]


def sync_store(ctx: JobContext) -> SyncStore:
    """The job's sync store; a PermanentError when the executor gave none (a misconfiguration)."""
    if ctx.data is None:
        raise PermanentError("no sync store: data jobs run in the executor", code="no_sync_store")
    return ctx.data


def run_sync(
    ctx: JobContext,
    provider: str,
    resource: str,
    fetch: Fetch,
    *,
    max_pages: int,
    conditional: bool = True,
) -> Outcome:
    """Fetch and store pages until the pass completes or `max_pages` (see the module doc).

    The result: pages and counts of this attempt, whether the pass completed, and the cursor
    the next run resumes from. Raises the fetch's IntegrationError after noting it on the sync,
    and `Deferred` to continue in another attempt when the deadline comes first.
    """
    store = sync_store(ctx)
    state = store.begin(provider, resource)
    counts = PageCounts()
    pages = 0
    slowest = 0.0
    not_modified = False
    checked_at = -CANCEL_CHECK_S
    request = _first_request(state, conditional)
    cursor = request.cursor
    # One page is fetched ahead while the one before it is stored: the provider's time and the
    # database's overlap. Only what `store_page` committed counts; a page fetched ahead of a
    # crash or a failure is simply fetched again from the saved cursor.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-fetch") as ahead:
        pending: Future[Page] | None = None
        while True:
            started = time.monotonic()
            if started - checked_at >= CANCEL_CHECK_S:
                ctx.checkpoint("fetching a page")
                checked_at = started
            try:
                page = pending.result() if pending is not None else fetch(request)
                pending = None
                cursor = page.next_cursor
                more = cursor is not None and pages + 1 < max_pages
                if more and not _out_of_time(ctx, slowest):
                    request = PageRequest(cursor)
                    pending = ahead.submit(contextvars.copy_context().run, fetch, request)
                counts += store.store_page(provider, resource, page)
            except IntegrationError as exc:
                store.fail(provider, resource, exc.message)
                raise
            pages += 1
            not_modified = not_modified or page.not_modified
            slowest = max(slowest, time.monotonic() - started)
            if cursor is None or pages >= max_pages:
                break
            if pending is None or _out_of_time(ctx, slowest):
                raise Deferred(
                    f"the sync continues from its cursor after {pages} pages this attempt",
                    CONTINUE_AFTER_S,
                    cause="sync_continues",
                )
    return Succeeded(result=_result(provider, resource, pages, counts, cursor, not_modified))


def _first_request(state: SyncState, conditional: bool) -> PageRequest:
    """Resume at the saved cursor; validators describe a whole pass, so they go only with the
    first page of a pass that starts from the top."""
    if state.cursor is not None or not conditional:
        return PageRequest(state.cursor)
    return PageRequest(None, state.etag, state.last_modified)


def _out_of_time(ctx: JobContext, slowest_s: float) -> bool:
    if ctx.deadline is None:
        return False
    return ctx.deadline - time.monotonic() < max(PAGE_MARGIN_S, 2 * slowest_s)


def _result(
    provider: str,
    resource: str,
    pages: int,
    counts: PageCounts,
    cursor: str | None,
    not_modified: bool,
) -> dict[str, Any]:
    return {
        "provider": provider,
        "resource": resource,
        "pages": pages,
        "fetched": counts.fetched,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "not_modified": not_modified,
        "complete": cursor is None,
        "cursor": cursor,
    }
