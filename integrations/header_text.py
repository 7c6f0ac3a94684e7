"""Whether text can be sent in an HTTP header field (RFC 9110 §5.1, §5.5).

A field name is a token; a field value is visible ASCII or Latin-1 (obs-text) with spaces and
tabs inside, and never CR, LF, NUL or another control character. Text outside that either cannot
be encoded on the wire (`UnicodeEncodeError`) or splits the header (CR/LF): refused when a
client stores it, and a permanent job failure (not a provider fault) when found at run time.
"""

from __future__ import annotations

import re

# RFC 9110 §5.6.2 tchar.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def header_name_reason(name: str) -> str | None:
    """Why `name` cannot be a header field name; None when it can."""
    if _TOKEN.fullmatch(name) is None:
        return "a header name is a token: letters, digits and !#$%&'*+-.^_`|~ only"
    return None


def header_value_reason(value: str) -> str | None:
    """Why `value` cannot be (part of) a header field value; None when it can.

    The reason never quotes the text: the value may be a secret."""
    for ch in value:
        code = ord(ch)
        if ch in "\r\n":
            return "contains a line break (CR or LF)"
        if code == 0:
            return "contains a NUL character"
        if ch != "\t" and (code < 0x20 or 0x7F <= code <= 0x9F):
            return "contains a control character"
        if code > 0xFF:
            return "contains a character outside ASCII and Latin-1"
    return None
