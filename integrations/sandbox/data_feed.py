"""A paginated JSON resource behind a bearer token, in the two shapes APIs page in.

`GET /data/items?limit=&cursor=` answers `{"data": [...], "meta": {"next_cursor": …}}`;
`GET /data/items-linked?page=&per_page=` answers `{"items": [...]}` with an RFC 8288
`Link: <…>; rel="next"` header. Both need `Authorization: Bearer <token>`. Every page carries
the collection's validators, as APIs with a collection version do: an `ETag` from the dataset's
content and a `Last-Modified` that moves on with each change; `If-None-Match` /
`If-Modified-Since` that still match are answered `304 Not Modified` (RFC 9110 §13.2.2).
`POST /_sandbox/data` sets the dataset size, changed records, ECB revision, delay, token and a
fault script (`{"status": 503}`, `{"malformed": true}`, `{}` for a normal answer);
`GET /_sandbox/data` shows the counters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

from integrations.sandbox.errors import ApiError, invalid_request
from integrations.sandbox.faults import MAX_DELAY_MS, int_or_none
from integrations.sandbox.feed_state import FeedFault, FeedState, RawReply, feed_of, not_modified
from integrations.sandbox.wire import Backend, Reply, Request

MAX_PAGE = 1000
MAX_ITEMS = 10_000_000
FIRST_PUBLISHED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def item(index: int, revision: int) -> dict[str, Any]:
    """Record `index` of the dataset at a revision."""
    return {
        "id": f"item-{index:07d}",
        "name": f"Item {index}",
        "price": str(Decimal(index % 1000) / 4 + revision),
        "revision": revision,
    }


def _items(feed: FeedState, start: int, count: int) -> list[dict[str, Any]]:
    end = min(start + count, feed.items)
    return [item(i, feed.revisions.get(f"item-{i:07d}", 0)) for i in range(start, end)]


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, [str(default)])[-1]
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise invalid_request("parameter_invalid", f"{name} is {low} to {high}.", name)
    return int(raw)


def _guard(server: Backend, request: Request, what: str) -> tuple[FeedState, Reply | None]:
    """Auth, count, delay, and the scripted fault; a reply here replaces the answer."""
    feed = feed_of(server)
    feed.count(what)
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), feed.token.encode()):
        feed.count("auth_failed")
        raise ApiError(401, "authentication_error", "invalid_token", "Send the feed's token.")
    time.sleep(feed.delay_ms / 1000)
    fault = feed.next_fault()
    if fault is None or (fault.status is None and not fault.malformed):
        return feed, None
    if fault.status is not None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return feed, Reply(fault.status, {"error": {"message": "injected fault"}}, headers)
    return feed, RawReply(
        200, raw=b'{"data": [{"id": "item-0000001", "na', content_type="application/json"
    )


def get_items(server: Backend, request: Request) -> Reply:
    """A page by opaque cursor."""
    feed, faulted = _guard(server, request, "items")
    if faulted is not None:
        return faulted
    headers, unchanged = _conditional(feed, request, "items")
    if unchanged is not None:
        return unchanged
    limit = _int(request, "limit", 100, 1, MAX_PAGE)
    cursor = request.query.get("cursor", [""])[-1]
    start = _decode(cursor) if cursor else 0
    page = _items(feed, start, limit)
    following = start + len(page)
    meta = {"next_cursor": _encode(following) if following < feed.items else None}
    return Reply(200, {"data": page, "meta": meta}, headers)


def get_linked(server: Backend, request: Request) -> Reply:
    """A page by number, the next one named in a `Link` header."""
    feed, faulted = _guard(server, request, "items-linked")
    if faulted is not None:
        return faulted
    headers, unchanged = _conditional(feed, request, "items-linked")
    if unchanged is not None:
        return unchanged
    per_page = _int(request, "per_page", 100, 1, MAX_PAGE)
    number = _int(request, "page", 1, 1, MAX_ITEMS)
    start = (number - 1) * per_page
    if start + per_page < feed.items:
        headers["Link"] = f'</data/items-linked?page={number + 1}&per_page={per_page}>; rel="next"'
    return Reply(200, {"items": _items(feed, start, per_page)}, headers)


def validators(feed: FeedState) -> tuple[str, datetime]:
    """The dataset's ETag (from its size and revisions) and Last-Modified (one minute a change)."""
    with feed.lock:
        state = json.dumps([feed.items, sorted(feed.revisions.items())])
        changes = feed.data_changes
    etag = '"' + hashlib.sha256(state.encode()).hexdigest()[:20] + '"'
    return etag, FIRST_PUBLISHED + timedelta(minutes=changes)


def _conditional(
    feed: FeedState, request: Request, what: str
) -> tuple[dict[str, str], Reply | None]:
    """The validators to send, and the 304 to answer instead when the client's still match."""
    etag, changed = validators(feed)
    headers = {"ETag": etag, "Last-Modified": format_datetime(changed, usegmt=True)}
    if not_modified(request, etag, changed):
        feed.count(f"{what}:304")
        return headers, RawReply(304, headers=headers, raw=b"")
    return headers, None


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("o:"):
            raise ValueError(text)
        return int(text[2:])
    except ValueError as exc:
        raise invalid_request("invalid_cursor", "Unknown cursor.", "cursor") from exc


def get_admin(server: Backend, request: Request) -> Reply:
    """The feeds' settings and request counters."""
    return Reply(200, feed_of(server).stats())


def post_admin(server: Backend, request: Request) -> Reply:
    """Set the feeds: `{"items", "revisions", "ecb_revision", "delay_ms", "token", "faults",
    "reset": true}`; absent fields stay as they are (`reset` first restores the defaults)."""
    try:
        body = json.loads(request.raw or b"{}")
    except ValueError as exc:
        raise invalid_request("invalid_json", "The body is not JSON.") from exc
    if not isinstance(body, dict):
        raise invalid_request("invalid_body", "Send a JSON object.")
    feed = feed_of(server)
    try:
        faults = [_fault(spec) for spec in body.get("faults", [])]
        items = int_or_none(body, "items", 0, MAX_ITEMS)
        delay = int_or_none(body, "delay_ms", 0, MAX_DELAY_MS)
        ecb_revision = int_or_none(body, "ecb_revision", 0, 1_000_000)
    except (ValueError, TypeError) as exc:
        raise invalid_request("invalid_body", str(exc)) from exc
    with feed.lock:
        if body.get("reset"):
            fresh = FeedState()
            feed.items, feed.revisions, feed.ecb_revision = fresh.items, {}, 0
            feed.data_changes = 0
            feed.delay_ms, feed.token, feed.faults = 0, fresh.token, []
            feed.requests.clear()
        if items is not None and items != feed.items:
            feed.items = items
            feed.data_changes += 1
        if delay is not None:
            feed.delay_ms = delay
        if ecb_revision is not None:
            feed.ecb_revision = ecb_revision
        if isinstance(body.get("revisions"), dict):
            feed.revisions.update({str(k): int(v) for k, v in body["revisions"].items()})
            feed.data_changes += 1
        if isinstance(body.get("token"), str) and body["token"]:
            feed.token = body["token"]
        if "faults" in body:
            feed.faults = faults
    return Reply(200, feed.stats())


def _fault(spec: Any) -> FeedFault:
    if not isinstance(spec, dict) or not set(spec) <= {"status", "retry_after", "malformed"}:
        raise ValueError(
            'a feed fault is {"status": N, "retry_after": S}, {"malformed": true} or {} (none)'
        )
    status = int_or_none(spec, "status", 400, 599)
    return FeedFault(
        status, int_or_none(spec, "retry_after", 0, 86_400), spec.get("malformed") is True
    )
