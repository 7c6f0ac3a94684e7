"""The data-provider contract: pages of typed records in, counts of what was stored out.

A provider fetches one page at a time (`fetch(PageRequest) -> Page`), sending the validators
it was given (`If-None-Match`, `If-Modified-Since`, RFC 9110 §13.1) and naming the next page by
a cursor (a page token or a next link). Its `classify(response)` reads a raw answer: a 304 is
`NOT_MODIFIED`, a 2xx is parsed or raises `PermanentError` naming what was malformed, anything
else raises the class `integrations.status.error_for_status` gives it. Handlers never see the
database: they store each page through the `SyncStore` the executor hands them in `JobContext`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from integrations.errors import PermanentError
from integrations.redact import redact_text

EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Record:
    """One provider record: its natural key (unique within the resource) and its fields."""

    key: str
    data: dict[str, Any]

    @cached_property
    def canonical_json(self) -> str:
        """`data` as canonical JSON (sorted keys, no spaces): what is hashed and stored."""
        return json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of `data`: equal content, equal hash."""
        return hashlib.sha256(self.canonical_json.encode()).hexdigest()


@dataclass(frozen=True)
class PageRequest:
    """What to ask for: the page (None: the first) and the validators of the last full pass."""

    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Page:
    """One page as fetched: its records, the next page's cursor (None: the last page), and
    the validators to send next time (kept once the pass completes)."""

    records: tuple[Record, ...]
    next_cursor: str | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class PageCounts:
    """What storing a page did: records fetched, inserted, updated (content changed), unchanged."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: PageCounts) -> PageCounts:
        return PageCounts(
            self.fetched + other.fetched,
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


@dataclass(frozen=True)
class SyncState:
    """Where a sync stands when a run begins: the page to resume at and the last validators."""

    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    pages: int = 0
    counts: PageCounts = field(default_factory=PageCounts)


@dataclass(frozen=True)
class PullSource:
    """A tenant's generic JSON pull, with its auth secret already decrypted (never logged)."""

    name: str
    url: str
    records_path: str
    key_path: str
    next_cursor_path: str | None = None
    next_link: str | None = None  # "header" (RFC 8288 `Link: <…>; rel="next"`) or a JSON path
    cursor_param: str = "cursor"
    page_size_param: str = "limit"
    page_size: int = 100
    max_pages: int = 100
    conditional: bool = False
    auth_header: str | None = None
    auth_prefix: str = ""
    secret: str | None = field(default=None, repr=False)


class SyncStore(Protocol):
    """The executor's handle on one job's syncs: every call is its own transaction.

    Bound to the job's tenant and id. `store_page` upserts the records and saves the cursor in
    ONE transaction, so a crash between pages loses nothing committed and repeats nothing.
    Raises `SyncTakenOver` (a `PermanentError`) when another job has taken the sync over.
    """

    def begin(self, provider: str, resource: str) -> SyncState:
        """Take the sync for this job; resume a pass a crash or failure left half done."""
        ...

    def store_page(self, provider: str, resource: str, page: Page) -> PageCounts:
        """Upsert the page's records and move the cursor on; the last page ends the pass."""
        ...

    def fail(self, provider: str, resource: str, message: str) -> None:
        """Note why the run stopped; the cursor stays where the last committed page left it."""
        ...

    def source(self, name: str) -> PullSource | None:
        """The tenant's pull source by name, its secret decrypted; None when unknown."""
        ...


def raw_excerpt(text: str) -> str:
    """The start of a raw provider answer, redacted, for an error message."""
    flat = " ".join(text.split())
    return redact_text(flat[:EXCERPT_CHARS])


class SyncTakenOver(PermanentError):
    """Another job took this sync over while this one ran; its pages stand, this run stops."""
