"""Injected faults: how one provider request should misbehave, from JSON or a header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

Reset = Literal["before", "after"]

MAX_DELAY_MS = 300_000
MAX_DRIP_MS = 60_000
SPEC_FIELDS = frozenset(
    {"status", "retry_after", "delay_ms", "reset", "should_retry", "drip_ms", "odd_body"}
)
# What an "odd body" fault answers in place of a 2xx body: valid JSON of a shape no adapter reads.
ODD_BODY: dict[str, object] = {"id": 5, "object": []}
# Compact header names → spec fields: `429;retry_after=2`, `delay=5000`, `should_retry=false`,
# `drip=2000` (the body one byte every 2 s), `odd-body` (a 2xx answered with ODD_BODY).
HEADER_FIELDS = {
    "status": "status",
    "retry_after": "retry_after",
    "delay": "delay_ms",
    "delay_ms": "delay_ms",
    "should_retry": "should_retry",
    "drip": "drip_ms",
    "drip_ms": "drip_ms",
}
HEADER_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; the default instance means "answer normally"."""

    status: int | None = None
    retry_after: int | None = None
    delay_ms: int = 0
    reset: Reset | None = None
    should_retry: bool | None = None  # sent as Stripe-Should-Retry when set
    # Slow drip: the answer's headers at once, then its body one byte every `drip_ms`.
    drip_ms: int = 0
    # The endpoint does its work, but a 2xx answer's body is replaced with ODD_BODY.
    odd_body: bool = False


def fault_from_json(spec: object) -> Fault:
    """A fault from a JSON object such as `{"status": 429, "retry_after": 2}`."""
    if not isinstance(spec, dict):
        raise ValueError("a fault spec is a JSON object")
    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(sorted(map(str, unknown)))}")
    status = int_or_none(spec, "status", 400, 599)
    retry_after = int_or_none(spec, "retry_after", 0, 86_400)
    delay_ms = int_or_none(spec, "delay_ms", 0, MAX_DELAY_MS) or 0
    reset = spec.get("reset")
    if reset not in (None, "before", "after"):
        raise ValueError("reset is 'before' or 'after'")
    if status is not None and reset is not None:
        raise ValueError("a fault either answers a status or resets, not both")
    should_retry = spec.get("should_retry")
    if should_retry is not None and not isinstance(should_retry, bool):
        raise ValueError("should_retry is true or false")
    if status is None and (retry_after is not None or should_retry is not None):
        raise ValueError("retry_after and should_retry need a status")
    drip_ms = int_or_none(spec, "drip_ms", 0, MAX_DRIP_MS) or 0
    odd_body = spec.get("odd_body", False)
    if not isinstance(odd_body, bool):
        raise ValueError("odd_body is true or false")
    if (drip_ms or odd_body) and reset is not None:
        raise ValueError("a reset sends no body to drip or replace")
    return Fault(
        status,
        retry_after,
        delay_ms,
        cast("Reset | None", reset),
        should_retry,
        drip_ms=drip_ms,
        odd_body=odd_body,
    )


def fault_from_header(text: str) -> Fault:
    """A fault from its header form: `429;retry_after=2`, `delay=5000`, `drip=2000`, `odd-body`."""
    spec: dict[str, Any] = {}
    for token in filter(None, (part.strip() for part in text.split(";"))):
        if token.isdigit():
            spec["status"] = int(token)
        elif token in ("reset-before", "reset-after"):
            spec["reset"] = token.removeprefix("reset-")
        elif token == "odd-body":  # noqa: S105  (a fault name, not a password)
            spec["odd_body"] = True
        elif "=" in token:
            field, value = _header_field(token)
            spec[field] = value
        else:
            raise ValueError(f"bad fault token {token!r}")
    return fault_from_json(spec)


def _header_field(token: str) -> tuple[str, int | bool]:
    name, _, text = (part.strip() for part in token.partition("="))
    field = HEADER_FIELDS.get(name)
    if field == "should_retry" and text.lower() in HEADER_BOOLEANS:
        return field, HEADER_BOOLEANS[text.lower()]
    if field is not None and field != "should_retry" and text.isdigit():
        return field, int(text)
    raise ValueError(f"bad fault token {token!r}")


def int_or_none(spec: dict[Any, Any], name: str, low: int, high: int) -> int | None:
    """The integer field `name` of a JSON spec, checked against bounds; None when absent."""
    value = spec.get(name)
    if value is None:
        return None
    # bool is an int subclass; `true` is never a sensible status or delay.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} is an integer from {low} to {high}")
    return value


def is_delay(value: object) -> bool:
    """Whether `value` is a whole number of milliseconds the sandbox may wait."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DELAY_MS
