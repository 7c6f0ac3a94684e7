"""When a schedule fires: a 5-field cron in an IANA zone, or a fixed interval in seconds.

Fire times are computed with `cronsim` over `zoneinfo` zones and handed out as aware UTC. The DST
rule: a cron with a fixed minute and hour (`30 2 * * *`) names wall-clock times; cronsim lists
them and `zoneinfo` (fold=0) turns each into an instant. A time the spring-forward jump skips
fires once, where it would have been without the jump (a daily 02:30 Europe/Berlin fires at
03:30 CEST that day); a time the fall-back repeats fires once, at its first occurrence (02:30
CEST). A cron with a wildcard minute or hour (`0 * * * *`) follows real time (cronsim's aware
iteration), so an hourly schedule fires every real hour across fall-back (25 firings that day).
Which of the two a cron is depends on what its fields mean, not how they are spelled: it follows
real time when its minute field covers all 60 minutes or its hour field all 24 hours (`*`,
`0-59`, `*/1`, a full list), and names wall-clock times otherwise, so `*/30 2 * * *` and
`0,30 2 * * *`, or `0 */2 * * *` and `0 0,2,4,…,22 * * *`, fire at the same instants.

Times past year 9999 (in UTC or in the zone) do not exist: iteration stops before them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_FIELDS = 5
ALL_MINUTES = 60
ALL_HOURS = 24
_US = 1_000_000
# More than any clock change of a zone's current rules (DST moves clocks by at most 2 hours).
_SHIFT = timedelta(hours=3)


class InvalidTrigger(ValueError):
    """A cron expression, time zone or interval that cannot make a trigger; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def in_zone(instant: datetime, tz: ZoneInfo) -> datetime | None:
    """`instant` in the zone `tz`, or None when that local time falls outside years 1-9999."""
    try:
        return instant.astimezone(tz)
    except OverflowError:
        return None


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
        """Whether the expression names fixed wall-clock times: neither its minutes cover the
        whole hour nor its hours the whole day (judged on the expanded fields, not spelling)."""
        parsed = CronSim(self.expr, datetime(2000, 1, 1))
        return len(parsed.minutes) < ALL_MINUTES and len(parsed.hours) < ALL_HOURS

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after` (aware), in UTC, strictly ascending; the sequence
        ends where times would pass year 9999."""
        try:
            yield from self._times_after(after)
        except (OverflowError, ValueError):
            return  # cronsim or zoneinfo stepped past datetime.max (or before datetime.min)

    def _times_after(self, after: datetime) -> Iterator[datetime]:
        tz = zone(self.zone_name)
        # Start some wall time early: around a transition later wall times map to earlier
        # instants (and back); the filters below keep the order and uniqueness.
        local_after = after.astimezone(tz).replace(tzinfo=None)
        walls = CronSim(self.expr, max(local_after, datetime.min + _SHIFT) - _SHIFT)
        if self.wall_clock:
            last = after
            for wall in walls:
                instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
                if instant > last:
                    last = instant
                    yield instant
            return
        yield from _real_time(walls, tz, after)


def _real_time(walls: Iterator[datetime], tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Every instant whose local time is one of `walls` (ascending wall times): a repeated
    wall time gives two instants, a skipped one none. Instants are held until no later wall
    time can give an earlier one (transitions move the clock by less than `_SHIFT`)."""
    pending: list[datetime] = []
    last = after
    for wall in walls:
        horizon = wall.replace(tzinfo=tz, fold=0).astimezone(UTC) - _SHIFT
        while pending and pending[0] <= horizon:
            instant = heapq.heappop(pending)
            if instant > last:
                last = instant
                yield instant
        for fold in (0, 1):
            instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
            if instant.astimezone(tz).replace(tzinfo=None) == wall:  # the wall time exists
                heapq.heappush(pending, instant)


@dataclass(frozen=True)
class IntervalTrigger:
    """Every `interval_s` seconds from `anchor` (aware): anchor, anchor + i, anchor + 2i, …"""

    interval_s: float
    anchor: datetime

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise InvalidTrigger("interval_s", "interval_s must be above 0")

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after`, in UTC, ascending (integer microseconds, no drift);
        the sequence ends where times would pass year 9999."""
        step = round(self.interval_s * _US)
        elapsed = (after - self.anchor) // timedelta(microseconds=1)
        k = 0 if elapsed < 0 else elapsed // step + 1
        while True:
            try:
                fire_time = (self.anchor + timedelta(microseconds=k * step)).astimezone(UTC)
            except OverflowError:
                return
            yield fire_time
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
