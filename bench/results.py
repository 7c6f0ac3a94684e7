"""What a scenario produces: per-run figures, and ratios against baselines with their targets."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

CONVEYOR = "conveyor"


@dataclass
class Series:
    """One metric of one system, a value per run."""

    system: str
    metric: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median over runs."""
        return statistics.median(self.values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the summary beside the raw values."""
        return {
            **asdict(self),
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
        }


@dataclass(frozen=True)
class Target:
    """Conveyor's median over a baseline's median, bounded below (throughput) or above (latency).

    `subject` replaces Conveyor as the numerator (e.g. the 1 M-row database against the 10 k-row
    one), and `baseline_metric` compares two metrics of one system (RSS loaded against idle).
    """

    metric: str
    baseline: str
    bound: float
    higher_is_better: bool = True
    subject: str = CONVEYOR
    baseline_metric: str | None = None

    @property
    def denominator(self) -> tuple[str, str]:
        """(system, metric) of the baseline."""
        return self.baseline, self.baseline_metric or self.metric

    def label(self) -> str:
        """What is divided by what, as the ratio lines print it."""
        if self.subject == CONVEYOR and self.baseline_metric is None:
            return f"{self.metric:<16} vs {self.baseline:<11}"
        system, metric = self.denominator
        if system == self.subject:
            return f"{self.subject}: {self.metric} / {metric}"
        return f"{self.metric}: {self.subject} / {system}"

    def describe(self) -> str:
        """`>= 3x` or `<= 1.5x`."""
        return f"{'>=' if self.higher_is_better else '<='} {self.bound:g}x"

    def met_by(self, ratio: float) -> bool:
        """Whether a ratio meets the bound."""
        return ratio >= self.bound if self.higher_is_better else ratio <= self.bound


@dataclass(frozen=True)
class Ratio:
    """A target and how the measured ratio fared (None when the baseline did not run)."""

    target: Target
    value: float | None

    @property
    def met(self) -> bool | None:
        """True or False, or None when there is nothing to compare."""
        return None if self.value is None else self.target.met_by(self.value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "metric": self.target.metric,
            "subject": self.target.subject,
            "baseline": self.target.baseline,
            "baseline_metric": self.target.denominator[1],
            "target": self.target.describe(),
            "ratio": self.value,
            "met": self.met,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario measured, with its parameters and notes."""

    name: str
    params: dict[str, Any]
    series: list[Series]
    targets: list[Target]
    notes: list[str] = field(default_factory=list)
    # Whatever else a scenario keeps for later reading (query plans, RSS samples), JSON only.
    details: dict[str, Any] = field(default_factory=dict)

    def find(self, system: str, metric: str) -> Series | None:
        """The series of `system` for `metric`, if it ran."""
        return next((s for s in self.series if s.system == system and s.metric == metric), None)

    def ratios(self) -> list[Ratio]:
        """Each target with its subject's median (Conveyor's) over the baseline's median."""
        found = []
        for target in self.targets:
            ours = self.find(target.subject, target.metric)
            theirs = self.find(*target.denominator)
            value = ours.median / theirs.median if ours and theirs and theirs.median else None
            found.append(Ratio(target, value))
        return found

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "scenario": self.name,
            "params": self.params,
            "series": [s.as_dict() for s in self.series],
            "ratios": [r.as_dict() for r in self.ratios()],
            "notes": self.notes,
            "details": self.details,
        }
