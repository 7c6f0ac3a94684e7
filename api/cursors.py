"""The one answer to a cursor the API did not issue: `422 invalid_cursor` (store/keyset.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from api.errors import ApiError
from store.keyset import InvalidCursor, decode_cursor, decode_name_cursor

Key = TypeVar("Key")


def invalid_cursor() -> ApiError:
    """`422 invalid_cursor`, pointing at the `cursor` query parameter."""
    return ApiError(
        422, "invalid_cursor", "cursor is not one this API issued", {"loc": ["query", "cursor"]}
    )


def position(cursor: str | None, key: Callable[[object], Key]) -> tuple[datetime, Key] | None:
    """Where a page starts: None for the first, the decoded `(time, id)` for a cursor."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, key)
    except InvalidCursor:
        raise invalid_cursor() from None


def name_position(cursor: str | None) -> str | None:
    """Where a page of a name-ordered list starts: None for the first, the name for a cursor."""
    if cursor is None:
        return None
    try:
        return decode_name_cursor(cursor)
    except InvalidCursor:
        raise invalid_cursor() from None
