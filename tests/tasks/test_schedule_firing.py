"""Beat's firing with an injected clock on real SQLite and PostgreSQL: DST, misfire, overlap,
fencing, and one job per slot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings
from store.db import get_database
from store.keys import IssuedKey
from store.leases import LeaseLost
from store.models import Job, Schedule, ScheduleRun
from store.schedules import ScheduleSpec, create_schedule, get_schedule, set_enabled
from store.triggers import CronTrigger, upcoming
from tasks.publish import producer_app
from tasks.schedules import fire_due
from workers.beat import BeatRunner

BERLIN = ZoneInfo("Europe/Berlin")
RATES = "data.sandbox.fetch_rates"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make(settings: Settings, tenant: uuid.UUID, now: datetime, **fields: object) -> None:
    spec = ScheduleSpec(name="s", job_type=RATES, payload={"base": "EUR"}, **fields)  # type: ignore[arg-type]
    create_schedule(get_database(settings), tenant, spec, now)


def runner(settings: Settings, clock: Clock, holder: str = "beat-a") -> BeatRunner:
    return BeatRunner(settings, producer_app(settings), clock=clock, holder=holder)


def runs(settings: Settings) -> list[tuple[datetime, str, uuid.UUID | None]]:
    with get_database(settings).session() as session:
        rows = session.execute(
            select(ScheduleRun.fire_time, ScheduleRun.outcome, ScheduleRun.job_id).order_by(
                ScheduleRun.fire_time
            )
        ).all()
    return [(r.fire_time, r.outcome, r.job_id) for r in rows]


def job_count(settings: Settings) -> int:
    with get_database(settings).session() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def walk(beat: BeatRunner, clock: Clock, until: datetime, step_s: float) -> None:
    while clock.now < until:
        clock.advance(step_s)
        beat.tick()


@pytest.fixture
def wide(settings: Settings) -> Settings:
    """Settings whose misfire grace spans the test's 10-minute clock steps."""
    return settings.model_copy(update={"schedule_misfire_grace_s": 900.0})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


def test_daily_0230_berlin_fires_once_on_spring_forward_day_at_0330_local(
    wide: Settings, tenant_key: IssuedKey
) -> None:
    # Given a daily 02:30 Europe/Berlin schedule, and a clock the day before the jump
    clock = Clock(utc(2026, 3, 28, 12))
    make(wide, tenant_key.tenant_id, clock.now, cron="30 2 * * *", timezone="Europe/Berlin")
    # When beat ticks every 10 minutes across the spring-forward night and the next one
    walk(runner(wide, clock), clock, utc(2026, 3, 30, 12), 600)
    # Then the jump day has exactly one run, at 03:30 local (where 02:30 would have been)
    fired = runs(wide)
    assert [t for t, _, _ in fired] == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert fired[0][0].astimezone(BERLIN).strftime("%H:%M %z") == "03:30 +0200"
    assert job_count(wide) == 2


def test_daily_0230_berlin_fires_once_on_fall_back_day(
    wide: Settings, tenant_key: IssuedKey
) -> None:
    # Given a daily 02:30 Europe/Berlin schedule, and a clock the day before clocks go back
    clock = Clock(utc(2026, 10, 24, 12))
    make(wide, tenant_key.tenant_id, clock.now, cron="30 2 * * *", timezone="Europe/Berlin")
    # When beat ticks across the night in which 02:30 happens twice
    walk(runner(wide, clock), clock, utc(2026, 10, 26, 12), 600)
    # Then it fired once that night, at the first 02:30 (summer time), and once the next night
    fired = [t for t, _, _ in runs(wide)]
    assert fired == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert [t.astimezone(BERLIN).strftime("%H:%M %z") for t in fired] == [
        "02:30 +0200",
        "02:30 +0100",
    ]


def test_hourly_schedule_fires_every_real_hour_across_fall_back(
    wide: Settings, tenant_key: IssuedKey
) -> None:
    # Given an hourly schedule in Berlin and a clock before the fall-back night
    clock = Clock(utc(2026, 10, 24, 21, 30))
    make(wide, tenant_key.tenant_id, clock.now, cron="0 * * * *", timezone="Europe/Berlin")
    # When beat ticks every 10 minutes through the repeated hour
    walk(runner(wide, clock), clock, utc(2026, 10, 25, 4, 30), 600)
    # Then it fired every real hour, 02:00 local twice (summer, then winter time), no gap
    fired = [t for t, _, _ in runs(wide)]
    assert fired == [utc(2026, 10, 24, 22) + timedelta(hours=h) for h in range(7)]
    local = [t.astimezone(BERLIN).strftime("%H:%M%z") for t in fired]
    assert local.count("02:00+0200") == 1 and local.count("02:00+0100") == 1


def test_day_31_fires_only_in_months_with_31_days() -> None:
    # Given `0 0 31 * *` in Berlin
    trigger = CronTrigger("0 0 31 * *", "Europe/Berlin")
    # When its fire times over a year are listed
    times = upcoming(trigger, utc(2026, 1, 1), 7)
    # Then they fall on the 31st of exactly the seven long months, at local midnight
    local = [t.astimezone(BERLIN) for t in times]
    assert [t.month for t in local] == [1, 3, 5, 7, 8, 10, 12]
    assert all((t.day, t.hour, t.minute) == (31, 0, 0) for t in local)


@pytest.mark.parametrize(("misfire", "expected_jobs"), [("skip", 1), ("run_once", 2)])
def test_resume_after_a_pause_follows_the_misfire_policy(
    settings: Settings, tenant_key: IssuedKey, misfire: str, expected_jobs: int
) -> None:
    # Given a every-minute schedule that fired once
    t0 = utc(2026, 6, 1, 12)
    clock = Clock(t0)
    make(settings, tenant_key.tenant_id, t0, interval_s=60.0, misfire=misfire)
    beat = runner(settings, clock)
    clock.advance(61)
    beat.tick()
    assert job_count(settings) == 1
    # When it is paused for ten minutes, beat ticking all along
    db = get_database(settings)
    with db.session() as session:
        row = get_schedule(session, tenant_key.tenant_id, "s")
        assert row is not None
        set_enabled(session, row, False, clock.now)
    for _ in range(20):
        clock.advance(30)
        beat.tick()
    # Then nothing fired while paused
    assert job_count(settings) == 1
    # And after resuming (45 s past a slot, beyond the 30 s grace) the missed slots are
    # dropped (skip) or collapsed into one run of the latest (run_once)
    clock.now = t0 + timedelta(seconds=660 + 45)
    with db.session() as session:
        row = get_schedule(session, tenant_key.tenant_id, "s")
        assert row is not None
        set_enabled(session, row, True, clock.now)
    beat.tick()
    assert job_count(settings) == expected_jobs
    fired = runs(settings)
    if misfire == "run_once":
        assert fired[-1][0] == t0 + timedelta(seconds=660)
    with db.session() as session:
        row = get_schedule(session, tenant_key.tenant_id, "s")
        assert row is not None and row.next_fire_at == t0 + timedelta(seconds=720)
        assert row.skipped_slots == (10 if misfire == "skip" else 9)


def test_overlap_skip_leaves_out_slots_while_the_previous_job_runs(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an every-minute schedule with overlap `skip`, whose first job is still running
    t0 = utc(2026, 6, 1, 12)
    clock = Clock(t0)
    make(settings, tenant_key.tenant_id, t0, interval_s=60.0, overlap="skip")
    beat = runner(settings, clock)
    clock.advance(61)
    beat.tick()
    first = runs(settings)[0][2]
    with get_database(settings).session() as session:
        session.execute(update(Job).where(Job.id == first).values(state="running"))
    # When the next slot comes while it runs, and one more after it finished
    clock.advance(60)
    beat.tick()
    with get_database(settings).session() as session:
        session.execute(
            update(Job).where(Job.id == first).values(state="succeeded", finished_at=clock.now)
        )
    clock.advance(60)
    beat.tick()
    # Then the middle slot was skipped, the others fired
    assert [outcome for _, outcome, _ in runs(settings)] == ["fired", "skipped_overlap", "fired"]
    assert job_count(settings) == 2


def test_leader_paused_past_its_lease_fires_nothing_after_waking(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given two beats on one clock, A leading an every-10-seconds schedule
    t0 = utc(2026, 6, 1, 12)
    clock = Clock(t0)
    make(settings, tenant_key.tenant_id, t0, interval_s=10.0)
    a, b = runner(settings, clock, "beat-a"), runner(settings, clock, "beat-b")
    clock.advance(10.5)
    a.tick()
    b.tick()
    assert a.leadership.held is not None and b.leadership.held is None
    # And A reads the schedule due, then stops (SIGSTOP) past its lease
    with get_database(settings).session() as session:
        stale = get_schedule(session, tenant_key.tenant_id, "s")
    stale_lease = a.leadership.held
    clock.advance(settings.beat_lease_s + 5)
    # When B takes over and fires, and then A wakes and fires what it had planned
    b.tick()
    assert b.leadership.held is not None
    assert stale is not None
    with pytest.raises(LeaseLost):
        fire_due(get_database(settings), settings, stale, clock.now, stale_lease)
    a.tick()
    # Then A is no longer leader and every slot has exactly one run and one job
    assert a.leadership.held is None
    fired = runs(settings)
    assert len({t for t, _, _ in fired}) == len(fired) == job_count(settings)
    assert b.leadership.held.token > stale_lease.token


def test_a_slot_that_fired_cannot_fire_again_after_a_restart_or_clock_step(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a schedule whose slot at t0+60 fired
    t0 = utc(2026, 6, 1, 12)
    clock = Clock(t0)
    make(settings, tenant_key.tenant_id, t0, interval_s=60.0)
    clock.advance(61)
    runner(settings, clock).tick()
    assert job_count(settings) == 1
    # When a new beat comes up with the schedule pointing at that slot again (a restored
    # backup, a clock stepped back)
    with get_database(settings).session() as session:
        session.execute(update(Schedule).values(next_fire_at=t0 + timedelta(seconds=60)))
    clock.advance(settings.beat_lease_s + 1)  # the old leader's lease ran out: it died
    restarted = runner(settings, clock, "beat-restarted")
    restarted.tick()
    assert restarted.leadership.held is not None
    # Then the unique (schedule, fire_time) key refuses a second job, and the schedule moves on
    assert job_count(settings) == 1
    with get_database(settings).session() as session:
        assert session.scalar(select(Schedule.next_fire_at)) == t0 + timedelta(seconds=120)


def test_no_slot_fires_before_start_at_or_after_end_at(
    settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given an every-minute schedule running from t0+5 min to t0+7 min
    t0 = utc(2026, 6, 1, 12)
    clock = Clock(t0)
    window = {"start_at": t0 + timedelta(minutes=5), "end_at": t0 + timedelta(minutes=7)}
    make(settings, tenant_key.tenant_id, t0, interval_s=60.0, **window)
    # When beat ticks every 20 s for ten minutes
    walk(runner(settings, clock), clock, t0 + timedelta(minutes=10), 20)
    # Then it fired exactly at 5, 6 and 7 minutes, and has no next slot
    assert [t for t, _, _ in runs(settings)] == [t0 + timedelta(minutes=m) for m in (5, 6, 7)]
    with get_database(settings).session() as session:
        assert session.scalar(select(Schedule.next_fire_at)) is None
