"""When a schedule fires: a 5-field cron in an IANA zone, or a fixed interval in seconds.

Fire times are computed with `cronsim` over `zoneinfo` zones and handed out as aware UTC. The DST
rule: a cron with a fixed minute and hour (`30 2 * * *`) names wall-clock times; cronsim lists
them and `zoneinfo` (fold=0) turns each into an instant. A time the spring-forward jump skips
fires once, where it would have been without the jump (a daily 02:30 Europe/Berlin fires at
03:30 CEST that day); a time the fall-back repeats fires once, at its first occurrence (02:30
CEST). A cron with a wildcard minute or hour (`0 * * * *`) follows real time (cronsim's aware
iteration), so an hourly schedule fires every real hour across fall-back (25 firings that day).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_FIELDS = 5
_US = 1_000_000


class InvalidTrigger(ValueError):
    """A cron expression, time zone or interval that cannot make a trigger; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; InvalidTrigger("timezone") when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTrigger("timezone", f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class CronTrigger:
    """A standard 5-field cron expression evaluated in a named zone."""

    expr: str
    zone_name: str

    def __post_init__(self) -> None:
        tz = zone(self.zone_name)
        if len(self.expr.split()) != CRON_FIELDS:
            raise InvalidTrigger("cron", "cron needs exactly 5 fields: minute hour day month dow")
        try:
            next(CronSim(self.expr, datetime(2000, 1, 1, tzinfo=tz)))
        except (CronSimError, StopIteration) as exc:
            raise InvalidTrigger("cron", f"invalid cron expression: {exc}") from None

    @property
    def wall_clock(self) -> bool:
        """Whether the expression names fixed wall-clock times (no wildcard minute or hour)."""
        minute, hour = self.expr.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after` (aware), in UTC, strictly ascending."""
        tz = zone(self.zone_name)
        if not self.wall_clock:
            for local in CronSim(self.expr, after.astimezone(tz)):
                yield local.astimezone(UTC)
            return
        last = after
        # Start two hours of wall time early: a fall-back night maps later wall times to earlier
        # instants, and a skipped time maps an hour later; the filter keeps order and uniqueness.
        start = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=2)
        for wall in CronSim(self.expr, start):
            instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            if instant > last:
                last = instant
                yield instant


@dataclass(frozen=True)
class IntervalTrigger:
    """Every `interval_s` seconds from `anchor` (aware): anchor, anchor + i, anchor + 2i, …"""

    interval_s: float
    anchor: datetime

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise InvalidTrigger("interval_s", "interval_s must be above 0")

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after`, in UTC, ascending (integer microseconds, no drift)."""
        step = round(self.interval_s * _US)
        elapsed = (after - self.anchor) // timedelta(microseconds=1)
        k = 0 if elapsed < 0 else elapsed // step + 1
        while True:
            yield (self.anchor + timedelta(microseconds=k * step)).astimezone(UTC)
            k += 1


Trigger = CronTrigger | IntervalTrigger


def next_after(trigger: Trigger, after: datetime, end: datetime | None = None) -> datetime | None:
    """The first fire time strictly after `after`, or None when there is none before `end`."""
    for fire_time in trigger.times_after(after):
        return None if end is not None and fire_time > end else fire_time
    return None


def upcoming(
    trigger: Trigger, after: datetime, count: int, end: datetime | None = None
) -> list[datetime]:
    """The next `count` fire times strictly after `after` (fewer when `end` comes first)."""
    return [t for t in islice(trigger.times_after(after), count) if end is None or t <= end]
