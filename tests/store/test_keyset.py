"""The one keyset cursor codec: what it issues it reads back; anything else is InvalidCursor."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from store.keyset import (
    BIGINT_MAX,
    InvalidCursor,
    bigint_key,
    decode_cursor,
    encode_cursor,
    uuid_key,
)

AT = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def forged(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_it_issued_reads_back_for_both_kinds_of_id() -> None:
    # Given a job's and a record's position / When encoded and decoded / Then the same position
    job_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(AT, job_id), uuid_key) == (AT, job_id)
    assert decode_cursor(encode_cursor(AT, BIGINT_MAX), bigint_key) == (AT, BIGINT_MAX)


@pytest.mark.parametrize(
    "cursor",
    [
        forged("[" * 3000 + "]" * 3000),
        forged(["9999-12-31T23:59:59-14:00", 1]),
        forged(["2026-01-01T00:00:00+00:00", 2**70]),
        forged(["2026-01-01T00:00:00+00:00", True]),
        forged(["2026-01-01T00:00:00+00:00", -1]),
        forged(["2026-01-01T00:00:00+00:00", "1"]),
        forged(["2026-01-01T00:00:00", 1]),
        forged({"a": 1}),
        forged([1, 1]),
        "x" * 513,
        "!!!",
        "",
    ],
)
def test_anything_it_did_not_issue_is_an_invalid_cursor(cursor: str) -> None:
    # When a forged record cursor is decoded / Then InvalidCursor, never another exception
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, bigint_key)
