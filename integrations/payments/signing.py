"""Webhook signatures of payment providers: Stripe's signed header, Adyen's per-item HMAC.

Pure functions over bytes and dicts, no web framework: the API hands in the raw body it
received, before any JSON parsing, because a re-serialised body no longer matches what the
provider signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

STRIPE_TOLERANCE_S = 300
STRIPE_SCHEME = "v1"

# Adyen's order for the HMAC of a notification item (standard payment webhooks).
ADYEN_SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


class SignatureError(ValueError):
    """A webhook whose signature is missing, malformed, wrong or outside the time tolerance."""


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value Stripe would send for this payload at `timestamp`."""
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},{STRIPE_SCHEME}={_hmac_sha256(secret.encode(), signed).hex()}"


def _is_unix_time(value: str) -> bool:
    # Bounded length: a thousand-digit "timestamp" would overflow the float comparison later.
    return value.isascii() and value.isdigit() and len(value) <= 12


def _parse_stripe_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            if timestamp is not None or not _is_unix_time(value):
                raise SignatureError("malformed signature header timestamp")
            timestamp = int(value)
        elif key == STRIPE_SCHEME:
            signatures.append(value)
        # Other schemes (v0 is Stripe's test-mode scheme) are ignored, as Stripe's SDKs do.
    if timestamp is None:
        raise SignatureError("signature header has no timestamp")
    if not signatures:
        raise SignatureError(f"signature header has no {STRIPE_SCHEME} signature")
    return timestamp, signatures


def verify_stripe(
    payload: bytes,
    header: str | None,
    secret: str,
    tolerance_s: int = STRIPE_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one `v1` in the header signs `payload` within the tolerance."""
    if not header:
        raise SignatureError("missing signature header")
    timestamp, signatures = _parse_stripe_header(header)
    expected = stripe_signature(payload, secret, timestamp).rpartition("=")[2].encode()
    # Every candidate is compared in constant time; Stripe sends several while rolling secrets.
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
        raise SignatureError("no signature matches the payload")
    current = time.time() if now is None else now
    # Both directions: a stale header is a replay, one from the future a clock we can't trust.
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is more than {tolerance_s}s from now")


def _adyen_field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # Adyen sends "true"/"false"; a JSON boolean means the same
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise SignatureError("notification item has a field of the wrong type")


def adyen_signing_data(item: dict[str, Any]) -> str:
    """The colon-joined string Adyen signs for a notification item (missing fields empty)."""
    amount = item.get("amount") or {}
    if not isinstance(amount, dict):
        raise SignatureError("notification item amount is not an object")
    fields = {**item, "value": amount.get("value"), "currency": amount.get("currency")}
    return ":".join(_adyen_field(fields.get(name)) for name in ADYEN_SIGNED_FIELDS)


def adyen_signature(item: dict[str, Any], hmac_key_hex: str) -> str:
    """The `additionalData.hmacSignature` Adyen would send for this notification item."""
    digest = _hmac_sha256(bytes.fromhex(hmac_key_hex), adyen_signing_data(item).encode())
    return base64.b64encode(digest).decode()


def verify_adyen_item(item: dict[str, Any], hmac_key_hex: str) -> None:
    """Raise SignatureError unless the item's `additionalData.hmacSignature` signs it."""
    if not isinstance(item, dict):
        raise SignatureError("notification item is not an object")
    additional = item.get("additionalData")
    given = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(given, str) or not given:
        raise SignatureError("notification item has no hmacSignature")
    expected = adyen_signature(item, hmac_key_hex)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("hmacSignature does not match the notification item")
