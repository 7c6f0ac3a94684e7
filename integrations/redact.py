"""The one place that makes text and data safe to log or store: secrets out, PANs masked.

The rules themselves live in `config.redaction` (so logging and the API use the same ones);
this module re-exports them for integrations and adds excerpts and header redaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from config.redaction import (
    CVC_KEYS,
    REDACTED,
    find_cvcs,
    find_pans,
    find_secrets,
    luhn_valid,
    mask_pans,
    redact_head,
    redact_text,
    redact_value,
)

__all__ = [
    "CVC_KEYS",
    "REDACTED",
    "excerpt",
    "find_cvcs",
    "find_pans",
    "find_secrets",
    "luhn_valid",
    "mask_pans",
    "redact",
    "redact_headers",
    "redact_text",
    "redact_value",
]

DEFAULT_EXCERPT_LIMIT = 2000
SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
        "stripe-signature",
    }
)  # fmt: skip
SECRET_HEADER_PARTS = ("signature", "secret", "token", "api-key", "apikey", "password")

# The older name, kept for existing callers.
redact = redact_value


# Wider than the longest card number with separators (19 digits + 4 spaces or dashes).
WINDOW_MARGIN = 64


def excerpt(value: Any, limit: int = DEFAULT_EXCERPT_LIMIT) -> str:
    """Redact, render and truncate a value for storing in attempt history or a log line."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not isinstance(value, str):
        raw = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        if len(raw) > limit + WINDOW_MARGIN:
            # A long answer (a page of records): redact only the elements that reach the kept
            # window, plus a margin wider than any card number, each by the same rules as the
            # whole value (`redact_head`); the text rules then see the window's elements whole.
            head, _ = redact_head(value, limit + WINDOW_MARGIN)
            text = redact_text(json.dumps(head, sort_keys=True, default=str, ensure_ascii=False))
            if len(text) >= limit + WINDOW_MARGIN:
                return f"{text[:limit]}…[truncated {len(raw) - limit} chars]"
            # (the text rules shortened the window below its margin: take the whole value)
    clean = redact_value(value)
    if isinstance(clean, str):
        text = clean
    else:
        text = json.dumps(clean, sort_keys=True, default=str, ensure_ascii=False)
        # default=str may have rendered objects (and bare integers) that redact() could not see.
        text = redact_text(text)
    # Truncating only after redaction means a cut can never expose more than a masked PAN.
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of HTTP headers with credential headers blanked and other values redacted."""
    clean: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower().replace("_", "-")
        secret = lowered in SECRET_HEADERS or any(p in lowered for p in SECRET_HEADER_PARTS)
        clean[name] = REDACTED if secret else redact_text(value)
    return clean
