"""The maintenance schedules built into Conveyor, declared here and seeded into the schedules
table, where beat's leader fires them like any other schedule (and the API lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.settings import Settings
from store.db import get_database
from store.schedules import seed_builtin
from tasks.entry import PUBLISH_DUE_TASK, RECONCILE_TASK, SWEEP_TASK
from tasks.purge import PURGE_TASK


@dataclass(frozen=True)
class Builtin:
    """A maintenance task beat sends every `interval_s` seconds."""

    name: str
    task: str
    interval_s: float


def builtins(settings: Settings) -> list[Builtin]:
    """Publish due jobs, sweep orphans, reconcile payments, purge old jobs."""
    return [
        Builtin("conveyor.publish-due", PUBLISH_DUE_TASK, settings.due_poll_s),
        Builtin("conveyor.sweep", SWEEP_TASK, settings.sweep_interval_s),
        Builtin("conveyor.reconcile", RECONCILE_TASK, settings.reconcile_interval_s),
        Builtin("conveyor.purge", PURGE_TASK, settings.purge_interval_s),
    ]


def seed_builtins(settings: Settings, now: datetime) -> None:
    """Make the table hold every built-in with this deployment's intervals."""
    db = get_database(settings)
    for builtin in builtins(settings):
        seed_builtin(db, builtin.name, builtin.task, builtin.interval_s, now)
