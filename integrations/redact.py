"""The one place that makes text and data safe to log or store: secrets out, PANs masked."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
DEFAULT_EXCERPT_LIMIT = 2000

# Dict keys are compared lower-cased with "-" folded into "_".
SECRET_KEYS = frozenset(
    {
        "authorization", "proxy_authorization", "cookie", "set_cookie", "api_key", "apikey",
        "x_api_key", "secret", "client_secret", "password", "passwd", "token", "access_token",
        "refresh_token", "cvc", "cvv", "cvc2", "cvv2", "card_number", "pan", "private_key",
        "signing_secret", "webhook_secret", "stripe_signature",
    }
)  # fmt: skip
# Names that are secret wherever they appear in a key (``stripe_webhook_secret``, ``x_signature``).
SECRET_KEY_PARTS = ("secret", "password", "signature")
# "number" is only a PAN inside a card object; elsewhere it is an invoice or line number.
CARD_KEYS = frozenset({"exp_month", "exp_year", "cvc", "cvv"})
SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
        "stripe-signature",
    }
)  # fmt: skip
SECRET_HEADER_PARTS = ("signature", "secret", "token", "api-key", "apikey", "password")

# One alternation for the text rules, so "api-key", "api_key" and "apikey" all match.
_KEY_ALTERNATION = "|".join(
    k.replace("_", "[-_]?") for k in sorted(SECRET_KEYS, key=len, reverse=True)
)
JSON_SECRET_FIELD = re.compile(
    rf'("(?:{_KEY_ALTERNATION})"\s*:\s*)(?:"(?:[^"\\]|\\.)*"|-?\d+)', re.IGNORECASE
)
# Form and query strings, including the percent-encoded brackets requests sends (card%5Bnumber%5D).
FORM_SECRET_FIELD = re.compile(
    rf"(?<![\w\[])((?:card(?:\[|%5B)(?:number|cvc|cvv)(?:\]|%5D)|{_KEY_ALTERNATION})=)[^&\s]*",
    re.IGNORECASE,
)
BEARER_TOKEN = re.compile(r"\b(Bearer)\s+[^\s\"']+", re.IGNORECASE)
API_KEY_TOKEN = re.compile(r"\b(?:(?:sk|rk)_(?:live|test)_\w+|whsec_\w+|cvk_\w+|sk_\w{8,})")
# A maximal run of 13+ digits joined by single spaces or dashes; Luhn decides what is a PAN.
DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,}(?!\d)")
DIGIT_GROUP = re.compile(r"\d+")
PAN_LENGTHS = range(13, 20)


def _luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_pans(match: re.Match[str]) -> str:
    """Replace each Luhn-valid PAN inside a digit run with its last four digits."""
    run = match.group()
    groups = [m.span() for m in DIGIT_GROUP.finditer(run)]
    pieces: list[str] = []
    kept_to = first = 0
    # The whole run is tried first; failing that, spans on group boundaries, so a PAN that
    # follows a stray number ("qty 1 4242 4242 4242 4242") is still caught.
    while first < len(groups):
        for last in range(min(len(groups), first + max(PAN_LENGTHS)) - 1, first - 1, -1):
            start, end = groups[first][0], groups[last][1]
            digits = run[start:end].replace(" ", "").replace("-", "")
            if len(digits) in PAN_LENGTHS and _luhn_valid(digits):
                pieces.append(f"{run[kept_to:start]}[PAN ****{digits[-4:]}]")
                kept_to, first = end, last + 1
                break
        else:
            first += 1
    return "".join(pieces) + run[kept_to:]


def redact_text(text: str) -> str:
    """Remove card numbers, bearer tokens, API keys and secret fields from free text."""
    text = JSON_SECRET_FIELD.sub(rf'\1"{REDACTED}"', text)
    text = FORM_SECRET_FIELD.sub(rf"\1{REDACTED}", text)
    text = BEARER_TOKEN.sub(rf"\1 {REDACTED}", text)
    text = API_KEY_TOKEN.sub(REDACTED, text)
    return DIGIT_RUN.sub(_mask_pans, text)


def _normalise_key(key: object) -> str:
    return str(key).lower().replace("-", "_")


def _is_secret_key(key: str, card: bool) -> bool:
    return (
        key in SECRET_KEYS
        or any(part in key for part in SECRET_KEY_PARTS)
        or (card and key == "number")
    )


def redact(value: Any) -> Any:
    """Return a deep copy of JSON-like data with secret fields and secrets in strings removed."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        keys = {_normalise_key(k) for k in value}
        card = not keys.isdisjoint(CARD_KEYS)
        return {
            k: REDACTED if _is_secret_key(_normalise_key(k), card) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def excerpt(value: Any, limit: int = DEFAULT_EXCERPT_LIMIT) -> str:
    """Redact, render and truncate a value for storing in attempt history or a log line."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    clean = redact(value)
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
