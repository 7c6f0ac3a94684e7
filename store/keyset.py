"""Keyset cursors: the opaque `(time, id)` position a page ends at, encoded and decoded once.

Every keyset-paginated list (jobs, data records) hands out `encode_cursor` text and reads it back
through `decode_cursor`; a list ordered by a unique name (schedules) uses `encode_name_cursor` /
`decode_name_cursor`, the same envelope around `["name", name]`. Both refuse anything they did
not issue with `InvalidCursor`: text longer than `CURSOR_MAX`, bytes that are not base64 JSON of
exactly `[time, id]` (or `["name", name]`), a time without a zone or whose UTC value leaves years
1-9999, an id a database column cannot hold.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

# Far above any cursor we issue (~100 characters), far below what could nest deep enough to hurt.
CURSOR_MAX = 512
# A BIGINT id: larger integers would overflow the database driver's parameter.
BIGINT_MAX = 2**63 - 1

Key = TypeVar("Key")


class InvalidCursor(ValueError):
    """The cursor is not one this API issued."""


def uuid_key(value: object) -> uuid.UUID:
    """A UUID id from its cursor text."""
    if not isinstance(value, str):
        raise TypeError("a UUID id is text")
    return uuid.UUID(value)


def bigint_key(value: object) -> int:
    """An integer id from a cursor: a JSON integer (not a boolean) in BIGINT's range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
        raise ValueError("not a BIGINT id")
    return value


def encode_cursor(at: datetime, key: uuid.UUID | int) -> str:
    """An opaque cursor pointing just past the row at `(at, key)`."""
    ident: str | int = str(key) if isinstance(key, uuid.UUID) else key
    raw = json.dumps([at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, key: Callable[[object], Key]) -> tuple[datetime, Key]:
    """The (time in UTC, id) a cursor points past; InvalidCursor when it is not ours."""
    if len(cursor) > CURSOR_MAX:
        raise InvalidCursor("cursor too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise TypeError("a cursor is a [time, id] pair")
        at_text, ident = decoded
        if not isinstance(at_text, str):
            raise TypeError("cursor time must be text")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("cursor time has no time zone")
        return at.astimezone(UTC), key(ident)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        raise InvalidCursor("invalid cursor") from exc


# The first element of a name cursor's JSON array: no `(time, id)` cursor starts with it.
_NAME_TAG = "name"


def encode_name_cursor(name: str) -> str:
    """An opaque cursor pointing just past the row named `name` (lists ordered by a unique name)."""
    raw = json.dumps([_NAME_TAG, name]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_name_cursor(cursor: str) -> str:
    """The name a name cursor points past; InvalidCursor when it is not one we issued."""
    if len(cursor) > CURSOR_MAX:
        raise InvalidCursor("cursor too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise InvalidCursor("invalid cursor") from exc
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or decoded[0] != _NAME_TAG
        or not isinstance(decoded[1], str)
        or "\x00" in decoded[1]
    ):
        raise InvalidCursor("invalid cursor")
    name: str = decoded[1]
    return name
