"""Request and response bodies of the `/v1/data` routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from api.inputs import Screened, Text
from integrations.header_text import header_name_reason, header_value_reason

NAME = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
# Dotted keys with optional [index] parts, optionally from `$`: `$.data`, `meta.next`, `items[0]`.
JSON_PATH = r"^\$?(?:\.?[^.\[\]\s]+|\[\d+\])*$"
HEADER_NAME = r"^[A-Za-z0-9-]{1,100}$"


def _header_name(value: str) -> str:
    reason = header_name_reason(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _header_value(value: str) -> str:
    reason = header_value_reason(value)
    if reason is not None:
        raise ValueError(f"not HTTP header text (RFC 9110 field-value): the text {reason}")
    return value


# Text sent in an HTTP header: a token name; a value of visible ASCII/Latin-1, spaces and tabs.
HeaderName = Annotated[Screened, AfterValidator(_header_name)]
HeaderValue = Annotated[Screened, AfterValidator(_header_value)]
# A secret's value goes into a header too, but is not screened: it is a credential.
SecretValue = Annotated[Text, AfterValidator(_header_value)]


class SecretIn(BaseModel):
    """A secret's value: write-only, stored encrypted, never answered."""

    model_config = ConfigDict(extra="forbid")

    # Not screened: a credential is exactly what belongs here (stored encrypted, never shown).
    # Sent as (part of) an HTTP header value, so it must be header text (no CR/LF, no NUL).
    value: SecretValue = Field(min_length=1, max_length=4096)


class SecretOut(BaseModel):
    """What the API tells about a secret: its name and when it was set; never the value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SourceConfig(BaseModel):
    """A generic JSON pull: where, how to page, where records and keys are, how to authenticate."""

    model_config = ConfigDict(extra="forbid")

    url: Screened = Field(max_length=2000, examples=["https://api.example.com/v2/items"])
    records_path: Screened = Field(default="data", pattern=JSON_PATH, max_length=200)
    key_path: Screened = Field(default="id", pattern=JSON_PATH, max_length=200)
    next_cursor_path: Screened | None = Field(default=None, pattern=JSON_PATH, max_length=200)
    next_link: Screened | None = Field(
        default=None,
        pattern=JSON_PATH,
        max_length=200,
        description='"header" for an RFC 8288 Link header, or a JSON path to the next URL',
    )
    cursor_param: Screened = Field(default="cursor", min_length=1, max_length=100)
    page_size_param: Screened = Field(default="limit", min_length=1, max_length=100)
    page_size: StrictInt = Field(default=100, ge=1, le=1000)
    max_pages: StrictInt = Field(default=100, ge=1, le=100_000)
    conditional: StrictBool = Field(
        default=False,
        description="send the first page's ETag / Last-Modified of the last complete pass "
        "(If-None-Match / If-Modified-Since); a 304 is a success with nothing changed. For "
        "sources whose first page's validators change whenever any record does",
    )
    auth_header: HeaderName | None = Field(default=None, pattern=HEADER_NAME)
    auth_prefix: HeaderValue = Field(default="", max_length=50, examples=["Bearer "])
    secret: Screened | None = Field(default=None, pattern=NAME, description="a secret's name")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.next_cursor_path and self.next_link:
            raise ValueError("give next_cursor_path or next_link, not both")
        if self.auth_header and not self.secret:
            raise ValueError("auth_header needs the name of a secret")
        return self


class SourceOut(BaseModel):
    """A configured source."""

    name: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RecordOut(BaseModel):
    """A stored record."""

    key: str
    data: dict[str, Any]
    content_hash: str
    job_id: uuid.UUID
    first_seen_at: datetime
    last_seen_at: datetime
    changed_at: datetime


class RecordPage(BaseModel):
    """One keyset page of records, oldest change first."""

    items: list[RecordOut]
    next_cursor: str | None = None


class SyncOut(BaseModel):
    """Where a sync stands; counts are those of the current (or last) pass."""

    provider: str
    resource: str
    cursor: str | None
    complete: bool
    job_id: uuid.UUID | None
    pages: int
    fetched: int
    inserted: int
    updated: int
    unchanged: int
    pass_started_at: datetime | None
    last_page_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
