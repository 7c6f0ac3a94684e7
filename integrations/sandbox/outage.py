"""A provider outage: for a while, every provider request gets the same 5xx answer."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.sandbox.faults import int_or_none

DEFAULT_STATUS = 503
MAX_SECONDS = 600.0
SPEC_FIELDS = frozenset({"status", "seconds", "retry_after"})


@dataclass(frozen=True)
class Outage:
    """A stretch of monotonic time during which provider requests answer `status` unperformed."""

    status: int
    starts_at: float
    ends_at: float
    retry_after: int | None = None

    def covers(self, moment: float) -> bool:
        """Whether a request arriving at `moment` falls inside the outage."""
        return self.starts_at <= moment < self.ends_at

    def remaining_s(self, now: float) -> float:
        """Seconds left at `now`; 0 once it is over."""
        return max(0.0, self.ends_at - now)


def outage_from_json(spec: object, starts_at: float) -> Outage:
    """An outage from `{"status": 503, "seconds": 5.0, "retry_after": 2}` from `starts_at` on."""
    if not isinstance(spec, dict):
        raise ValueError("an outage spec is a JSON object")
    unknown = set(spec) - SPEC_FIELDS
    if unknown:
        raise ValueError(f"unknown outage fields: {', '.join(sorted(map(str, unknown)))}")
    status = int_or_none(spec, "status", 500, 599) or DEFAULT_STATUS
    retry_after = int_or_none(spec, "retry_after", 0, 86_400)
    seconds = spec.get("seconds")
    # bool is an int subclass; NaN fails every comparison and infinity the upper bound.
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_SECONDS
    ):
        raise ValueError(f"outage seconds is a number above 0, at most {MAX_SECONDS:g}")
    return Outage(status, starts_at, starts_at + seconds, retry_after)
