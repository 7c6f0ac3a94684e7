"""Beat: any number may run; the one holding the lease fires due schedules from the database.

`DatabaseScheduler` plugs into Celery beat (`beat_scheduler`), which keeps the process loop,
signals and shutdown; each tick reads the schedules table afresh, so an edit made through the
API or CLI takes effect within one tick (`CONVEYOR_BEAT_TICK_S`), without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from celery import Celery
from celery.beat import Scheduler

from config.settings import Settings, get_settings
from store.db import get_database
from store.leases import LeaseLost
from store.schedules import due_schedules, next_due_at
from store.types import utcnow
from tasks.schedules import StaleSchedule, dispatch, fire_due
from workers.leader import Leadership
from workers.schedule import seed_builtins

log = structlog.get_logger(__name__)

LEASE_NAME = "beat"
DUE_BATCH = 100


class BeatRunner:
    """One beat's loop body, with its clock injectable for tests."""

    def __init__(
        self,
        settings: Settings,
        app: Celery,
        clock: Callable[[], datetime] = utcnow,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.clock = clock
        self.db = get_database(settings)
        self.leadership = Leadership(self.db, LEASE_NAME, settings.beat_lease_s, holder)

    def tick(self) -> float:
        """Lead if possible and fire what is due; returns seconds to sleep before the next tick."""
        idle = self.settings.beat_tick_s
        now = self.clock()
        held = self.leadership.ensure(now)
        if held is None:
            return idle
        with self.db.session() as session:
            due = list(due_schedules(session, now, DUE_BATCH))
        for schedule in due:
            try:
                fired = fire_due(self.db, self.settings, schedule, now, held)
            except StaleSchedule:
                continue  # edited meanwhile: planned again from the new row next tick
            except LeaseLost:
                self.leadership.lost()
                return idle
            dispatch(self.db, self.app, fired)
            if fired.jobs or fired.missed or fired.skipped_overlap or fired.skipped_quota:
                log.info(
                    "beat.fired",
                    schedule=schedule.name,
                    jobs=len(fired.jobs),
                    missed=fired.missed,
                    skipped_overlap=fired.skipped_overlap,
                    skipped_quota=fired.skipped_quota,
                )
        if len(due) == DUE_BATCH:
            return 0.0
        with self.db.session() as session:
            upcoming = next_due_at(session)
        if upcoming is None:
            return idle
        wait = (upcoming - self.clock()).total_seconds()
        # A slot already due is a backlog (one slot per schedule per tick): pace it a tick apart.
        return idle if wait <= 0 else min(idle, wait)


class DatabaseScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat's scheduler reading the schedules table, gated on the beat lease."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        self.runner: BeatRunner | None = None
        self.seeded = False
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        """Get ready to lead; the built-ins are seeded on the first tick that reaches the DB."""
        self.seeded = False
        self.runner = BeatRunner(get_settings(), self.app)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass; a failing database makes beat wait a tick, never exit."""
        assert self.runner is not None
        try:
            if not self.seeded:
                seed_builtins(self.runner.settings, utcnow())
                self.seeded = True
            return self.runner.tick()
        except Exception as exc:
            log.warning("beat.tick_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            # Whatever it held, it cannot vouch for now (a frozen leader's session may have been
            # ended by PostgreSQL): follow, and take the lease anew when it is free.
            self.runner.leadership.lost()
            return self.runner.settings.beat_tick_s

    def close(self) -> None:
        """Release the lease on a clean stop, then close as Celery does."""
        if self.runner is not None:
            try:
                self.runner.leadership.release()
            except Exception as exc:
                log.warning("beat.release_failed", error=type(exc).__name__)
        super().close()

    @property
    def info(self) -> str:
        """What `celery beat` prints as its scheduler."""
        return "schedules table, one leader (lease)"
