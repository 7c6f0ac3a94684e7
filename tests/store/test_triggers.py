"""Cron triggers across DST, against a brute-force reference: expressions that mean the same
fire at the same instants; and no trigger raises for times near year 1 or 9999."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from store.triggers import CronTrigger, IntervalTrigger, upcoming

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
# (zone, the DST day) for the transitions the tests walk through.
SPRING_NY = (NEW_YORK, date(2027, 3, 14))
FALL_NY = (NEW_YORK, date(2027, 11, 7))
SPRING_BERLIN = (BERLIN, date(2027, 3, 28))
FALL_BERLIN = (BERLIN, date(2027, 10, 31))
DAYS = [SPRING_NY, FALL_NY, SPRING_BERLIN, FALL_BERLIN]

EVERY_OTHER_HOUR = ",".join(str(h) for h in range(0, 24, 2))
ALL_MINUTES = ",".join(str(m) for m in range(60))
# Groups of expressions that mean the same thing, spelled differently.
EQUIVALENT = [
    ["*/30 2 * * *", "0,30 2 * * *", "0-59/30 2 * * *", "0-30/30 2 * * *"],
    ["*/30 1 * * *", "0,30 1 * * *", "0-59/30 1 * * *"],
    ["0 */2 * * *", f"0 {EVERY_OTHER_HOUR} * * *", "0 0-23/2 * * *", "0 0-22/2 * * *"],
    ["0 * * * *", "0 0-23 * * *", "0 */1 * * *"],
    ["* 2 * * *", "0-59 2 * * *", f"{ALL_MINUTES} 2 * * *", "*/1 2 * * *"],
    ["*/15 1-3 * * *", "0,15,30,45 1,2,3 * * *"],
    ["30 2 * * *", "30-30 2-2 * * *", "30/60 2 * * *"],
]


def window(day: date) -> tuple[datetime, datetime]:
    """From the day before the transition to two days after it, in UTC."""
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=3)


def reference(expr: str, zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    """The documented rule, by brute force over every minute (daily expressions only).

    A cron whose minutes cover the hour or whose hours cover the day follows real time: each
    real minute whose local time matches fires. Otherwise it names wall-clock times: each
    matching wall time becomes the instant zoneinfo gives it (fold 0: a skipped time lands where
    it would have been without the jump, a repeated time fires at its first occurrence).
    """
    parsed = CronSim(expr, datetime(2000, 1, 1))
    minutes, hours = parsed.minutes, parsed.hours
    tz = ZoneInfo(zone_name)
    if len(minutes) == 60 or len(hours) == 24:
        found = []
        t = start
        while t <= end:
            local = t.astimezone(tz)
            if local.minute in minutes and local.hour in hours and t > start:
                found.append(t)
            t += timedelta(minutes=1)
        return found
    instants: set[datetime] = set()
    wall = (start - timedelta(days=1)).replace(tzinfo=None)
    while wall <= (end + timedelta(days=1)).replace(tzinfo=None):
        if wall.minute in minutes and wall.hour in hours:
            instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            if start < instant <= end:
                instants.add(instant)
        wall += timedelta(minutes=1)
    return sorted(instants)


def fire_times(expr: str, zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    times = CronTrigger(expr, zone_name).times_after(start)
    return list(takewhile(lambda t: t <= end, times))


@pytest.mark.parametrize("group", EQUIVALENT, ids=lambda g: g[0])
@pytest.mark.parametrize("day", DAYS, ids=lambda d: f"{d[0]}-{d[1]}")
def test_equivalent_crons_fire_at_the_same_instants_across_dst(
    group: list[str], day: tuple[str, date]
) -> None:
    # Given cron expressions that mean the same thing, and a window around a DST change
    zone_name, transition = day
    start, end = window(transition)
    # When each one's fire times over the window are listed
    times = {expr: fire_times(expr, zone_name, start, end) for expr in group}
    # Then they all fire at the same instants, those of the brute-force reference
    expected = reference(group[0], zone_name, start, end)
    assert expected, "the window holds fire times"
    for expr, found in times.items():
        assert found == expected, expr


@pytest.mark.parametrize(
    ("expr", "day", "count", "first_utc"),
    [
        # The jump skips 02:00-02:59 in New York: each half hour fires once, an hour on
        ("*/30 2 * * *", SPRING_NY, 2, datetime(2027, 3, 14, 7, tzinfo=UTC)),
        # 01:00-01:59 happens twice in New York: each half hour fires once, at its first occurrence
        ("*/30 1 * * *", FALL_NY, 2, datetime(2027, 11, 7, 5, tzinfo=UTC)),
        # Every other hour names wall times: 12 firings on Berlin's 25-hour day
        ("0 */2 * * *", FALL_BERLIN, 12, datetime(2027, 10, 30, 22, tzinfo=UTC)),
        # Every hour follows real time: 25 firings on Berlin's 25-hour day
        ("0 * * * *", FALL_BERLIN, 25, datetime(2027, 10, 30, 22, tzinfo=UTC)),
    ],
)
def test_the_dst_rule_on_the_transition_day(
    expr: str, day: tuple[str, date], count: int, first_utc: datetime
) -> None:
    # Given a cron in a zone, and the local day of a DST change
    zone_name, transition = day
    tz = ZoneInfo(zone_name)
    day_start = datetime.combine(transition, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    day_end = datetime.combine(transition + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    # When the fire times of that local day are listed
    times = [
        t
        for t in fire_times(expr, zone_name, day_start - timedelta(microseconds=1), day_end)
        if t < day_end
    ]
    # Then there are as many as the rule says, the first where it says
    assert len(times) == count, times
    assert times[0] == first_utc


@pytest.mark.parametrize(
    ("expr", "zone_name"),
    [
        ("0 0 1 1 *", "UTC"),
        ("* * * * *", "Pacific/Kiritimati"),
        ("0 0 * * *", "Pacific/Kiritimati"),
        ("*/30 2 * * *", NEW_YORK),
        ("0 0 31 12 *", "Pacific/Pago_Pago"),
    ],
)
def test_cron_times_near_the_ends_of_the_calendar_stop_instead_of_raising(
    expr: str, zone_name: str
) -> None:
    # Given a cron, and instants at both ends of what datetime can hold
    trigger = CronTrigger(expr, zone_name)
    for after in (
        datetime(9999, 12, 31, 0, 0, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    ):
        # When the next times are asked for
        times = upcoming(trigger, after, 5)
        # Then what exists is listed, in order, and nothing raises
        assert times == sorted(times) and all(t > after for t in times)


def test_an_interval_ending_the_calendar_stops_instead_of_raising() -> None:
    # Given an hourly interval anchored at the last hour of year 9999
    last_hour = datetime(9999, 12, 31, 23, tzinfo=UTC)
    trigger = IntervalTrigger(3600.0, last_hour)
    # When five times are asked for, then one exists
    assert upcoming(trigger, last_hour - timedelta(hours=1), 5) == [last_hour]
    assert upcoming(trigger, last_hour, 5) == []
