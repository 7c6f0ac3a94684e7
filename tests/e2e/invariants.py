"""docs/design.md §3's invariants I1-I6, checked on every job of a test at its end."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from config.settings import Settings
from store.db import get_database
from store.models import Job
from store.states import TERMINAL_STATES
from tests.tasks.factories import sandbox_stats


@dataclass
class Report:
    """What the check found: per-state counts, lost jobs and duplicated effects."""

    states: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    orphan_effects: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_invariants(settings: Settings, job_ids: Iterable[uuid.UUID], sandbox: str) -> Report:
    """Inspect every job and the PSP's effect counts; collect what breaks I1-I6."""
    ids = list(job_ids)
    report = Report()
    with get_database(settings).session() as session:
        jobs = list(
            session.scalars(
                select(Job).options(selectinload(Job.attempt_rows)).where(Job.id.in_(ids))
            )
        )
    stats = sandbox_stats(sandbox)
    effects: dict[str, int] = stats["effects"]
    keys = {f"cv-{job.id}-charge": job for job in jobs}
    for job in jobs:
        report.states[job.state] += 1
        if job.state not in TERMINAL_STATES:  # I1, I3
            report.lost.append(f"{job.id} {job.state}")
            continue
        if job.finished_at is None:
            report.problems.append(f"{job.id}: terminal without finished_at")
        worked = [a for a in job.attempt_rows if a.outcome not in ("duplicate", "deferred")]
        if job.attempts != len(worked):  # I6
            report.problems.append(f"{job.id}: attempts={job.attempts}, rows={len(worked)}")
        key = f"cv-{job.id}-charge"
        charged = job.type == "payments.sandbox.charge" and job.state == "succeeded"
        if charged and effects.get(key, 0) != 1:  # I2: a succeeded charge has one effect
            report.problems.append(f"{job.id}: succeeded with {effects.get(key, 0)} effects")
    for key, count in effects.items():
        if count > 1:  # I2, I5
            report.duplicated[key] = count
        if key not in keys:  # I4: no effect without its job row
            report.orphan_effects.append(key)
    return report


def assert_invariants(settings: Settings, job_ids: Iterable[uuid.UUID], sandbox: str) -> Report:
    """Fail naming every broken invariant; the report for figures otherwise."""
    report = check_invariants(settings, job_ids, sandbox)
    assert report.lost == [], f"jobs never reached a terminal state: {report.lost[:10]}"
    assert report.duplicated == {}, f"effects taken more than once: {report.duplicated}"
    assert report.orphan_effects == [], f"effects without a job: {report.orphan_effects}"
    assert report.problems == [], report.problems
    return report
