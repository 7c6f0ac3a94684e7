"""The sandbox data feeds' own knobs: dataset size, changed records, faults, delay, token."""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from integrations.sandbox.wire import Reply, Request

DEFAULT_ITEMS = 300
DEFAULT_TOKEN = "dt_sandbox_feed_token"  # noqa: S105 - the sandbox feed's well-known test token


@dataclass(frozen=True)
class RawReply(Reply):
    """A reply whose body is sent as these bytes (XML, a broken document), not as JSON."""

    raw: bytes = b""
    content_type: str = "application/json"


@dataclass(frozen=True)
class FeedFault:
    """What the next feed request gets instead of its answer: a status, or a malformed body."""

    status: int | None = None
    retry_after: int | None = None
    malformed: bool = False


@dataclass
class FeedState:
    """What the feeds serve; every field is settable through `POST /_sandbox/data`."""

    items: int = DEFAULT_ITEMS
    # Record id → revision: a revision above 0 changes that record's content.
    revisions: dict[str, int] = field(default_factory=dict)
    ecb_revision: int = 0
    # How many times the JSON dataset changed (items or revisions): its Last-Modified.
    data_changes: int = 0
    delay_ms: int = 0
    token: str = DEFAULT_TOKEN
    faults: list[FeedFault] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> FeedFault | None:
        """Take the next scripted fault, if any."""
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def count(self, what: str) -> None:
        """Count one request or outcome by name."""
        with self.lock:
            self.requests[what] += 1

    def stats(self) -> dict[str, Any]:
        """The counters and settings, JSON-ready."""
        with self.lock:
            return {
                "items": self.items,
                "revisions": dict(self.revisions),
                "ecb_revision": self.ecb_revision,
                "data_changes": self.data_changes,
                "delay_ms": self.delay_ms,
                "faults_left": len(self.faults),
                "requests": dict(self.requests),
            }


_feeds: weakref.WeakKeyDictionary[object, FeedState] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def feed_of(server: object) -> FeedState:
    """The feed state of one sandbox server (made on first use)."""
    with _feeds_lock:
        state = _feeds.get(server)
        if state is None:
            state = _feeds[server] = FeedState()
        return state


def not_modified(request: Request, etag: str, changed: datetime) -> bool:
    """Whether a conditional GET is answered 304: RFC 9110 §13.2.2 (If-None-Match first)."""
    match = request.header("If-None-Match")
    if match is not None:  # RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since
        return any(tag.strip() in (etag, "*") for tag in match.split(","))
    since = request.header("If-Modified-Since")
    if since is None:
        return False
    try:
        return changed <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
