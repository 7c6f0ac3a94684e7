"""`GET /ecb/eurofxref-daily.xml` and `/ecb/eurofxref-hist-90d.xml` in the ECB's XML shape.

Rates for every business day back from `LAST_DAY`, derived from `rates.PER_EUR` with a small
deterministic daily drift; `ETag` and `Last-Modified` change with the feed's `ecb_revision`,
and `If-None-Match` / `If-Modified-Since` are answered 304 as RFC 9110 §13.2.2 orders them.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

from integrations.sandbox.errors import ApiError
from integrations.sandbox.feed_state import FeedState, RawReply, feed_of, not_modified
from integrations.sandbox.rates import PER_EUR
from integrations.sandbox.wire import Backend, Reply, Request

LAST_DAY = date(2026, 11, 27)  # a Friday
DAYS_90 = 64
FILES = {"eurofxref-daily.xml": 1, "eurofxref-hist-90d.xml": DAYS_90}
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">\n'
    "\t<gesmes:subject>Reference rates</gesmes:subject>\n"
    "\t<gesmes:Sender>\n\t\t<gesmes:name>European Central Bank</gesmes:name>\n"
    "\t</gesmes:Sender>\n\t<Cube>\n"
)
TAIL = "\t</Cube>\n</gesmes:Envelope>\n"


def business_days(last: date, count: int) -> list[date]:
    """`count` weekdays ending at `last`, newest first (as the ECB lists them)."""
    days: list[date] = []
    day = last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days


def rate_on(currency: str, day: date, revision: int) -> Decimal:
    """A currency's rate per EUR on a day: the table's, drifted by up to ±0.5 %."""
    base = PER_EUR[currency]
    drift = Decimal((day.toordinal() * 7 + sum(map(ord, currency)) * 3 + revision) % 11 - 5)
    places = Decimal("0.01") if base >= 100 else Decimal("0.0001")
    return (base * (1 + drift / 1000)).quantize(places)


def document(count: int, revision: int) -> str:
    """The XML file of the `count` latest days."""
    parts = [HEAD]
    for day in business_days(LAST_DAY, count):
        parts.append(f"\t\t<Cube time='{day.isoformat()}'>\n")
        for currency in sorted(c for c in PER_EUR if c != "EUR"):
            rate = rate_on(currency, day, revision)
            parts.append(f"\t\t\t<Cube currency='{currency}' rate='{rate}'/>\n")
        parts.append("\t\t</Cube>\n")
    parts.append(TAIL)
    return "".join(parts)


def last_modified(revision: int) -> datetime:
    """When the file last changed: publication time on the last day, plus a minute a revision."""
    return datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 15, 0, tzinfo=UTC) + timedelta(
        minutes=revision
    )


def get_file(server: Backend, request: Request) -> Reply:
    """One of the two reference-rate files, conditional, with the feed's faults and delay."""
    feed = feed_of(server)
    name = request.params.get("file", "")
    if name not in FILES:
        raise ApiError(404, "invalid_request_error", "not_found", f"No file {name!r}.")
    feed.count(f"ecb:{name}")
    time.sleep(feed.delay_ms / 1000)
    fault = feed.next_fault()
    if fault is not None and fault.status is not None:  # `{}` in the script: a normal answer
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return RawReply(
            fault.status, headers=headers, raw=b"Service Unavailable\n", content_type="text/plain"
        )
    body = document(FILES[name], feed.ecb_revision)
    if fault is not None and fault.malformed:
        return RawReply(200, raw=body[: len(body) // 3].encode(), content_type="application/xml")
    return _answer(feed, request, body)


def _answer(feed: FeedState, request: Request, body: str) -> Reply:
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
    changed = last_modified(feed.ecb_revision)
    headers = {"ETag": etag, "Last-Modified": format_datetime(changed, usegmt=True)}
    if not_modified(request, etag, changed):
        feed.count("ecb:304")
        return RawReply(304, headers=headers, raw=b"", content_type="application/xml")
    return RawReply(200, headers=headers, raw=body.encode(), content_type="application/xml")
