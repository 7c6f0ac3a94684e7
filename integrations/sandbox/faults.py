"""Injected faults: how one provider request should misbehave, from JSON or a header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

Reset = Literal["before", "after"]

MAX_DELAY_MS = 300_000
SPEC_FIELDS = frozenset({"status", "retry_after", "delay_ms", "reset"})
# Compact header names → spec fields: `429;retry_after=2`, `delay=5000`.
HEADER_FIELDS = {
    "status": "status",
    "retry_after": "retry_after",
    "delay": "delay_ms",
    "delay_ms": "delay_ms",
}


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; the default instance means "answer normally"."""

    status: int | None = None
    retry_after: int | None = None
    delay_ms: int = 0
    reset: Reset | None = None


def fault_from_json(spec: object) -> Fault:
    """A fault from a JSON object such as `{"status": 429, "retry_after": 2}`."""
    if not isinstance(spec, dict):
        raise ValueError("a fault spec is a JSON object")
    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(sorted(map(str, unknown)))}")
    status = _int_or_none(spec, "status", 400, 599)
    retry_after = _int_or_none(spec, "retry_after", 0, 86_400)
    delay_ms = _int_or_none(spec, "delay_ms", 0, MAX_DELAY_MS) or 0
    reset = spec.get("reset")
    if reset not in (None, "before", "after"):
        raise ValueError("reset is 'before' or 'after'")
    if status is not None and reset is not None:
        raise ValueError("a fault either answers a status or resets, not both")
    if retry_after is not None and status is None:
        raise ValueError("retry_after needs a status")
    return Fault(status, retry_after, delay_ms, cast("Reset | None", reset))


def fault_from_header(text: str) -> Fault:
    """A fault from the header form: `503`, `429;retry_after=2`, `delay=5000`, `reset-after`."""
    spec: dict[str, Any] = {}
    for token in filter(None, (part.strip() for part in text.split(";"))):
        if token.isdigit():
            spec["status"] = int(token)
        elif token in ("reset-before", "reset-after"):
            spec["reset"] = token.removeprefix("reset-")
        elif "=" in token:
            name, _, value = token.partition("=")
            field = HEADER_FIELDS.get(name.strip())
            if field is None or not value.strip().isdigit():
                raise ValueError(f"bad fault token {token!r}")
            spec[field] = int(value)
        else:
            raise ValueError(f"bad fault token {token!r}")
    return fault_from_json(spec)


def _int_or_none(spec: dict[Any, Any], name: str, low: int, high: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    # bool is an int subclass; `true` is never a sensible status or delay.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} is an integer from {low} to {high}")
    return value
