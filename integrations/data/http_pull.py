"""Job type `data.http.pull`: a tenant's JSON REST resource, paged by cursor or next link.

The tenant configures a source through the API (`PUT /v1/data/sources/{name}`): the URL, where
the records, their natural key and the next page are in the answer (JSON paths), the page size
and how many pages one run may fetch, and the auth header whose value comes from a named secret
(encrypted at rest, decrypted only in the worker, never logged). Every URL fetched, next links
included, passes the outbound address check (`integrations.outbound.check_url`): no loopback,
private or link-local target unless `CONVEYOR_OUTBOUND_ALLOW_LOOPBACK` (development, tests).
Records are stored under provider `http`, resource = the source's name.

A source marked `conditional` keeps the `ETag` and `Last-Modified` of the first page of its last
complete pass and sends them (`If-None-Match`, `If-Modified-Since`) when a new pass starts; a
304 ends the run as a success that changed nothing, without fetching another page. That suits
a source whose first page's validators change whenever any record does (a collection version,
the newest change's time); where each page has validators of its own, leave it off.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from requests.utils import parse_header_links

from integrations.base import JobContext, JobType, Outcome
from integrations.data.base import Page, PageRequest, PullSource, Record, raw_excerpt
from integrations.data.jsonpath import PathMissing, resolve
from integrations.data.sync import run_sync, sync_store
from integrations.errors import IntegrationError, Misconfigured, PermanentError
from integrations.header_text import header_name_reason, header_value_reason
from integrations.http import HttpResponse
from integrations.outbound import check_url
from integrations.status import error_for_status

PROVIDER = "http"
SOURCE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class Pull(BaseModel):
    """Payload: the name of the tenant's pull source."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=SOURCE_NAME, description="a source configured for this tenant")


def malformed(what: str, text: str) -> PermanentError:
    """The error for an answer we cannot read: what was wrong, and how the answer began."""
    return PermanentError(
        f"malformed JSON page: {what}; the answer began: {raw_excerpt(text)!r}",
        code="malformed_response",
    )


def classify(response: HttpResponse) -> Any:
    """The parsed JSON of a 2xx answer, None for 304 Not Modified; PermanentError when it is
    not JSON, else the status's class (`integrations.status.error_for_status`: 429 and 5xx
    transient, other 4xx permanent).
    """
    if response.status == 304:
        return None
    if 200 <= response.status < 300:
        if response.body is None:
            raise malformed("the body is not JSON", response.text)
        return response.body
    error: IntegrationError | None = error_for_status(
        response.status, response.headers, f"the source answered {response.status}"
    )
    raise error or PermanentError(f"unexpected status {response.status}", code="unexpected")


def page_from(source: PullSource, response: HttpResponse, request: PageRequest, url: str) -> Page:
    """The records and the next cursor (or absolute next link) of one answer; the first page's
    validators when the source is conditional."""
    body = classify(response)
    if body is None:
        if request.etag is None and request.last_modified is None:
            raise PermanentError("304 Not Modified to an unconditional request", code="unexpected")
        return Page(
            (),
            not_modified=True,
            etag=response.headers.get("ETag") or request.etag,
            last_modified=response.headers.get("Last-Modified") or request.last_modified,
        )
    try:
        items = resolve(body, source.records_path)
    except PathMissing as exc:
        raise malformed(f"no records: {exc}", response.text) from exc
    if not isinstance(items, list):
        raise malformed(f"{source.records_path!r} is not a list", response.text)
    records = []
    for index, item in enumerate(items):
        try:
            key = resolve(item, source.key_path)
        except PathMissing as exc:
            raise malformed(f"record {index} has no key: {exc}", response.text) from exc
        if isinstance(key, bool) or not isinstance(key, str | int) or str(key) == "":
            raise malformed(
                f"record {index}: key {key!r} is not a string or integer", response.text
            )
        if not isinstance(item, dict):
            raise malformed(f"record {index} is not an object", response.text)
        records.append(Record(str(key), item))
    nxt = _next(source, body, response, url)
    if not (source.conditional and request.cursor is None):
        return Page(tuple(records), nxt)
    etag, changed = response.headers.get("ETag"), response.headers.get("Last-Modified")
    return Page(tuple(records), nxt, etag=etag, last_modified=changed)


def _next(source: PullSource, body: Any, response: HttpResponse, url: str) -> str | None:
    if source.next_link == "header":
        links = parse_header_links(response.headers.get("Link", ""))
        nxt = next((link["url"] for link in links if link.get("rel") == "next"), None)
        return urllib.parse.urljoin(url, nxt) if nxt else None
    path = source.next_link or source.next_cursor_path
    if path is None:
        return None
    try:
        value = resolve(body, path)
    except PathMissing:
        return None  # the last page leaves the next cursor out
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise malformed(f"next {path!r} is {value!r}, not a string", response.text)
    return urllib.parse.urljoin(url, str(value)) if source.next_link else str(value)


def page_url(source: PullSource, cursor: str | None) -> str:
    """The URL of a page: a next link as given, else the source URL with size and cursor."""
    if cursor is not None and source.next_link:
        return cursor
    parts = urllib.parse.urlsplit(source.url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append((source.page_size_param, str(source.page_size)))
    if cursor is not None:
        query.append((source.cursor_param, cursor))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def auth_value(source: PullSource) -> str:
    """The auth header's value; Misconfigured when the stored name, prefix or secret cannot be
    sent as a header (saved before the API refused such text): never retried, and no breaker
    counts it, since the provider saw nothing."""
    reason = header_name_reason(source.auth_header or "")
    field = "auth_header"
    if reason is None:
        reason, field = header_value_reason(source.auth_prefix), "auth_prefix"
    if reason is None:
        reason, field = header_value_reason(source.secret or ""), "secret value"
    if reason is not None:
        raise Misconfigured(
            f"source {source.name!r}: the {field} cannot be sent in an HTTP header: {reason}",
            code="invalid_auth_header",
        )
    return f"{source.auth_prefix}{source.secret}"


def pull(payload: Pull, ctx: JobContext) -> Outcome:
    """Fetch the source page by page from its saved cursor and store the records."""
    source = sync_store(ctx).source(payload.source)
    if source is None:
        raise PermanentError(f"no pull source named {payload.source!r}", code="unknown_source")
    headers = {"Accept": "application/json"}
    if source.auth_header and source.secret is not None:
        headers[source.auth_header] = auth_value(source)

    def fetch(request: PageRequest) -> Page:
        url = page_url(source, request.cursor)
        try:
            check_url(url, allow_private=ctx.settings.outbound_allow_loopback)
        except ValueError as exc:
            raise PermanentError(f"outbound URL refused: {exc}", code="outbound_refused") from exc
        sent = dict(headers)
        if request.etag:
            sent["If-None-Match"] = request.etag
        if request.last_modified:
            sent["If-Modified-Since"] = request.last_modified
        response = ctx.http.send("GET", url, headers=sent, deadline=ctx.deadline)
        return page_from(source, response, request, url)

    return run_sync(
        ctx,
        PROVIDER,
        source.name,
        fetch,
        max_pages=source.max_pages,
        conditional=source.conditional,
    )


PULL = JobType(
    name="data.http.pull",
    queue="data",
    payload_model=Pull,
    handler=pull,
    description="Pull a tenant-configured JSON REST resource page by page and store it.",
)
