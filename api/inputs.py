"""Input values the databases can hold: text without NUL or lone surrogates, datetimes in range.

Pydantic's lax mode reads `0` or `"0.5"` as a Unix time and `"no"` as False, and lets through
strings PostgreSQL refuses (NUL, RFC 8259 §8.2 lone surrogates) and times whose UTC value leaves
years 1-9999. Each field type here fails such a value as a validation error naming the field.
`Screened` text is also refused when it holds card data or an API key (api/screening.py), and
a `Name` (a tenant, a label) is NFC text with no control, format (zero-width, bidirectional),
separator, private-use or surrogate character, no white space but a plain inner space.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StrictBool
from pydantic_core import PydanticCustomError

from api.errors import ApiError
from api.screening import screen
from tasks.names import visible_name_refusal

# RFC 3339 / ISO 8601 date-time: a calendar date, "T" (or a space), a time, optional fraction,
# and an offset or "Z". Anything else (numbers, week dates, bare dates) is not a datetime here.
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?"
)


def unstorable_reason(text: str) -> str | None:
    """Why a string cannot be stored in PostgreSQL as text or JSON; None when it can."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate"
    return None


def _storable(value: str) -> str:
    reason = unstorable_reason(value)
    if reason is not None:
        raise ValueError(f"the text {reason}")
    return value


def _screened(value: str) -> str:
    try:
        screen(value, ())
    except ApiError as exc:
        # Answered as `422 <code>` with this field's place (api/errors.py), never its value.
        kind = exc.details.get("kind") if isinstance(exc.details, dict) else None
        raise PydanticCustomError(exc.code, exc.message, {"kind": kind}) from None
    return value


def _name(value: str) -> str:
    # The one rule for names, shared with the CLI (`tasks/names.py`).
    reason = visible_name_refusal(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _iso_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _ISO_DATETIME.fullmatch(value) is None:
        raise ValueError("expected an ISO 8601 date-time string with a time zone")
    return value


def _in_utc_range(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time in UTC falls outside years 1-9999") from None
    return value


# A string that PostgreSQL and SQLite both store as given.
Text = Annotated[str, AfterValidator(_storable)]

# Text a client wants stored and shown again: storable, and free of card data and API keys.
Screened = Annotated[Text, AfterValidator(_screened)]

# A name people read and type (a tenant, a label): screened NFC text without invisible,
# control or bidirectional characters, no white space but an inner space, so " demo ",
# "demo\u200b" and "\u202eomed" are refused rather than made look-alike tenants.
Name = Annotated[Screened, AfterValidator(_name)]

# An ISO 8601 date-time with a time zone whose UTC value is a representable datetime.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc_range)]

# Only JSON true/false: "no", 0 and "off" are errors, not False.
Flag = StrictBool
