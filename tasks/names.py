"""The rules for names people read and type (a tenant, a key's label) and a key's lifetime.

One rule for every door: the API's key schema (api/admin_keys.py) and `conveyor keys create`
refuse the same values. A name is text PostgreSQL can store (no NUL, no lone surrogate), holds
no card data or API key (tasks/screening.py), no control character, and no white space at
either end, so " demo " is refused rather than made a second tenant.
"""

from __future__ import annotations

import math
import unicodedata

from tasks.screening import Refused, screen_value

MAX_NAME_LENGTH = 100
MAX_KEY_DAYS = 3650


def name_refusal(value: str, *, required: bool = True) -> str | None:
    """Why `value` is not an acceptable name; None when it is."""
    if not value:
        return "may not be empty" if required else None
    if len(value) > MAX_NAME_LENGTH:
        return f"may be at most {MAX_NAME_LENGTH} characters"
    if (reason := text_refusal(value)) is not None:
        return reason
    try:
        screen_value(value, ())
    except Refused as exc:
        return exc.message
    return visible_name_refusal(value)


# Invisible, control, bidirectional-override, private-use and surrogate code points: a name
# holding one can look like another ("demo\u200b", "\u202eomed" shown as "demo").
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs"})


def visible_name_refusal(value: str) -> str | None:
    """Why `value` could be mistaken for another name when read; None when it cannot.

    No white space at either end, none but a plain inner space, no character of Unicode
    categories Cc/Cf/Zl/Zp/Co/Cs, and Unicode normalization form NFC.
    """
    if value != value.strip():
        return "a name may not start or end with white space"
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return (
                "a name may not contain invisible, control or bidirectional characters "
                f"(U+{ord(ch):04X})"
            )
        if ch.isspace() and ch != " ":
            return f"a name may use only a plain space as white space (U+{ord(ch):04X})"
    if unicodedata.normalize("NFC", value) != value:
        return "a name must be in Unicode normalization form NFC"
    return None


def text_refusal(value: str) -> str | None:
    """Why `value` cannot be stored or searched for in PostgreSQL; None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (not valid UTF-8)"
    return None


def key_days_refusal(days: float) -> str | None:
    """Why `days` is not an acceptable key lifetime; None when it is."""
    if not math.isfinite(days) or not 0 < days <= MAX_KEY_DAYS:
        return f"must be a number of days above 0 and at most {MAX_KEY_DAYS}"
    return None
