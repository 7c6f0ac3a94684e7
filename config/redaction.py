"""The pure redaction core: find card numbers, mask PANs, CVCs and secrets in text and JSON.

It lives in `config/` (which imports nothing of ours) so every layer can use the one rule:
the log processor in `config.logging`, the API's error rendering and screening, and
`integrations.redact`, which re-exports it and adds excerpts and header redaction.

What counts as a card number (PCI DSS: the PAN is 13-19 digits; ISO/IEC 7812 check digit):
a run of 13-19 digits, optionally grouped by single spaces or dashes, led by a card brand's
digit (see `_pan_shaped`), that passes the Luhn check and does not sit inside a key or id
token. A token is a run of letters, digits, `_` and `-` (never a space); one that holds a
letter or `_` (idempotency keys such as `cv-8030b5ce-…-4111111111111111-charge`, `pi_…`,
`ch_…`) or has the shape of a UUID is an identifier, never masked: ops search providers'
dashboards by it. A number written with spaces is never inside one token, so
`x4242 4242 4242 4242` is still a card number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Dict keys are compared lower-cased with "-" folded into "_".
CVC_KEYS = frozenset({"cvc", "cvv", "cvc2", "cvv2", "cvn", "security_code", "securitycode"})
SECRET_KEYS = CVC_KEYS | frozenset(
    {
        "authorization", "proxy_authorization", "cookie", "set_cookie", "api_key", "apikey",
        "x_api_key", "secret", "client_secret", "password", "passwd", "token", "access_token",
        "refresh_token", "card_number", "pan", "private_key", "signing_secret",
        "webhook_secret", "stripe_signature",
    }
)  # fmt: skip
# Names that are secret wherever they appear in a key (``stripe_webhook_secret``, ``x_signature``).
SECRET_KEY_PARTS = ("secret", "password", "signature")
# "number" is only a PAN inside a card object; elsewhere it is an invoice or line number.
CARD_KEYS = frozenset({"exp_month", "exp_year", "cvc", "cvv"})
# Keys whose value is a provider's payment reference: Adyen's pspReference is 16 alphanumerics,
# often all digits, so a Luhn-valid one would otherwise read as a card number.
REFERENCE_KEYS = frozenset({"reference", "pspreference", "psp_reference", "originalreference"})
PROVIDER_REFERENCE = re.compile(r"[0-9A-Z]{16}")

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
# "cvc 123", "CVV: 1234", "security code=737" in free text.
CVC_TEXT = re.compile(
    r"\b(cvc2?|cvv2?|cvn|security[ _-]?code)(\W{0,3})\d{3,4}(?!\d)", re.IGNORECASE
)
BEARER_TOKEN = re.compile(r"\b(Bearer)\s+[^\s\"']+", re.IGNORECASE)
# "Basic" is also an English word: only a base64-looking credential after it is one.
BASIC_TOKEN = re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{8,}={0,2}", re.IGNORECASE)
API_KEY_TOKEN = re.compile(r"\b(?:(?:sk|rk)_(?:live|test)_\w+|whsec_\w+|cvk_\w+|(?:sk|rk)_\w{8,})")
# A maximal run of 13+ digits joined by single spaces or dashes; Luhn decides what is a PAN.
DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,}(?!\d)")
DIGIT_GROUP = re.compile(r"\d+")
TOKEN_CHAR = re.compile(r"[\w-]")
UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
PAN_LENGTHS = range(13, 20)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum (ISO/IEC 7812-1)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _enclosing_token(text: str, start: int, end: int) -> str:
    """The run of letters, digits, `_` and `-` around text[start:end] (one side each)."""
    while start > 0 and TOKEN_CHAR.match(text[start - 1]):
        start -= 1
    while end < len(text) and TOKEN_CHAR.match(text[end]):
        end += 1
    return text[start:end]


def _is_identifier(token: str) -> bool:
    return any(ch.isalpha() or ch == "_" for ch in token) or UUID_SHAPE.fullmatch(token) is not None


def _pan_shaped(digits: str) -> bool:
    """13-19 digits led by a payment card's major industry identifier (ISO/IEC 7812-1).

    2-6 are the card brands (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6);
    1 is UATP's 15 digits. Epoch timestamps in ms (13 digits) and µs (16) start with 1, and one
    in ten passes Luhn by chance: they are not card numbers.
    """
    if len(digits) not in PAN_LENGTHS:
        return False
    return digits[0] in "23456" or (digits[0] == "1" and len(digits) == 15)


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies within one key or id token (identifiers hold no spaces)."""
    return " " not in text[start:end] and _is_identifier(_enclosing_token(text, start, end))


def _pan_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, digits) of each PAN candidate in text, left to right."""
    for run in DIGIT_RUN.finditer(text):
        groups = [
            (run.start() + m.start(), run.start() + m.end())
            for m in DIGIT_GROUP.finditer(run.group())
        ]
        first = 0
        # The whole run is tried first; failing that, spans on group boundaries, so a PAN that
        # follows a stray number ("qty 1 4242 4242 4242 4242") is still caught.
        while first < len(groups):
            for last in range(min(len(groups), first + max(PAN_LENGTHS)) - 1, first - 1, -1):
                start, end = groups[first][0], groups[last][1]
                digits = re.sub(r"[ -]", "", text[start:end])
                if _pan_shaped(digits) and luhn_valid(digits):
                    if not _inside_identifier(text, start, end):
                        yield start, end, digits
                    first = last + 1
                    break
            else:
                first += 1


def find_pans(text: str) -> list[str]:
    """The card numbers (digits only) found in text, in order; [] when there is none."""
    return [digits for _, _, digits in _pan_spans(text)]


def mask_pans(text: str) -> str:
    """Replace each card number in text with `[PAN ****<last four>]`."""
    pieces: list[str] = []
    kept_to = 0
    for start, end, digits in _pan_spans(text):
        pieces.append(f"{text[kept_to:start]}[PAN ****{digits[-4:]}]")
        kept_to = end
    return "".join(pieces) + text[kept_to:]


def find_secrets(text: str) -> list[str]:
    """API keys and webhook secrets (`sk_live_…`, `rk_…`, `whsec_…`) found in text.

    Bearer and Basic credentials are masked by `redact_text` but not reported here: "Bearer"
    and "Basic" are also plain words, too common to refuse a client's text on.
    """
    return [m.group() for m in API_KEY_TOKEN.finditer(text)]


def find_cvcs(text: str) -> list[str]:
    """Security codes written out in text ("cvc 123", "CVV: 1234")."""
    return [m.group() for m in CVC_TEXT.finditer(text)]


# What each rule below needs to find anything: a quote (JSON field), "=" (form field), a CVC
# word, "bearer"/"basic", an API key's prefix, or 13 digits in a row (a PAN). Text with none of
# them comes back as it is after one scan instead of seven.
MAY_HOLD_SECRET = re.compile(
    r"""["=]|bearer|basic|cvc|cvv|cvn|security|sk_|rk_|whsec_|cvk_|\d(?:[ -]?\d){12}""",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Remove card numbers, CVCs, bearer/basic tokens, API keys and secret fields from text."""
    if MAY_HOLD_SECRET.search(text) is None:
        return text
    if '"' in text:
        text = JSON_SECRET_FIELD.sub(rf'\1"{REDACTED}"', text)
    if "=" in text:
        text = FORM_SECRET_FIELD.sub(rf"\1{REDACTED}", text)
    text = CVC_TEXT.sub(rf"\1\2{REDACTED}", text)
    text = BEARER_TOKEN.sub(rf"\1 {REDACTED}", text)
    text = BASIC_TOKEN.sub(rf"\1 {REDACTED}", text)
    text = API_KEY_TOKEN.sub(REDACTED, text)
    return mask_pans(text)


def normalise_key(key: object) -> str:
    """A dict key as the rules compare it: lower case, "-" folded into "_"."""
    return str(key).lower().replace("-", "_")


def is_secret_key(key: str, card: bool = False) -> bool:
    """Whether a (normalised) key names a secret; `number` counts only inside a card object."""
    return (
        key in SECRET_KEYS
        or any(part in key for part in SECRET_KEY_PARTS)
        or (card and key == "number")
    )


def is_provider_reference(key: str, value: object) -> bool:
    """A payment reference field holding a provider's 16-alphanumeric reference (Adyen)."""
    return (
        key in REFERENCE_KEYS
        and isinstance(value, str)
        and PROVIDER_REFERENCE.fullmatch(value) is not None
    )


def _redacted_field(name: str, value: Any, card: bool) -> tuple[bool, Any]:
    """How a mapping's field comes out: (True, the replacement) or (False, recurse into it)."""
    if is_secret_key(name, card):
        return True, REDACTED
    if is_provider_reference(name, value):
        return True, value
    return False, None


def _is_card(value: Mapping[Any, Any]) -> bool:
    return not {normalise_key(k) for k in value}.isdisjoint(CARD_KEYS)


def redact_value(value: Any) -> Any:
    """A deep copy of any JSON value with secret fields blanked and secrets in strings masked.

    Values under CVC-like and credential keys become `[REDACTED]`; every other string goes
    through `redact_text`; tuples come back as lists; the input is never mutated.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        card = _is_card(value)
        clean: dict[Any, Any] = {}
        for k, v in value.items():
            done, replacement = _redacted_field(normalise_key(k), v, card)
            clean[k] = replacement if done else redact_value(v)
        return clean
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def redact_head(value: Any, budget: int) -> tuple[Any, int]:
    """The start of `redact_value(value)`: whole elements, in the order `json.dumps(...,
    sort_keys=True)` renders them, until about `budget` characters; and a lower bound of the
    length of that rendering.

    Each kept element is redacted exactly as `redact_value` would (a mapping's card context is
    read from all its keys), so the first `budget` characters of the kept part's rendering are
    those of the whole value's. A large answer then costs its first few elements, not all.
    """
    if isinstance(value, Mapping):
        card = _is_card(value)
        clean: dict[Any, Any] = {}
        used = 2  # "{}"; each field adds at least its quoted key, ": " and its value
        for k in sorted(value):
            if used >= budget:
                break
            v = value[k]
            done, replacement = _redacted_field(normalise_key(k), v, card)
            if done:
                clean[k] = replacement
                size = len(json.dumps(replacement, default=str))
            else:
                clean[k], size = redact_head(v, budget - used)
            used += len(str(k)) + 4 + size
        return clean, used
    if isinstance(value, list | tuple):
        items: list[Any] = []
        used = 1  # "[", then each item and its ", " or the closing "]"
        for item in value:
            if used >= budget:
                break
            kept, size = redact_head(item, budget - used)
            items.append(kept)
            used += size + 1
        return items, used
    if isinstance(value, str):
        text = redact_text(value)
        return text, len(text) + 2
    return value, len(json.dumps(value, default=str))


def _redact_log_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | float | str | Mapping | list | tuple):
        return redact_value(value)
    # Anything else (an int PAN, a UUID, an exception) is rendered as text by the renderer:
    # check that text, and keep the value itself when nothing in it needed masking.
    text = str(value)
    clean = redact_text(text)
    return value if clean == text else clean


def redact_event(logger: object, method_name: str, event_dict: Any) -> Any:
    """A structlog processor: every value of every log line goes through the rules above.

    It runs in the formatter after exceptions are rendered to text, so a traceback that
    quotes a card number or a key is masked like any other field.
    """
    return {key: _redact_log_value(value) for key, value in event_dict.items()}
