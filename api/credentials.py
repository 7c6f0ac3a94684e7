"""The API key a request presents: `Authorization: Bearer <key>`, or the password of
`Basic base64(user:key)` (what a browser sends to the ops console after its prompt)."""

from __future__ import annotations

import base64
import binascii


def presented_secret(authorization: str) -> str | None:
    """The API key in a `Bearer` or `Basic` Authorization value; None for anything else."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    _, sep, password = decoded.partition(":")
    return password or None if sep else None
