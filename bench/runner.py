"""How a scenario runs its systems: interleaved, R runs each, every figure kept."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.results import Series

# One run of one system: takes the run's index, returns {metric: value}.
Measure = Callable[[int], dict[str, float]]


@dataclass(frozen=True)
class Options:
    """What every scenario is given."""

    n: int | None
    runs: int
    db: str
    postgres_url: str
    workdir: Path
    # Flags of the extended scenarios; None means the scenario's own default.
    rows_small: int | None = None
    rows_large: int | None = None
    waiting: int | None = None
    soak_s: float | None = None

    def count(self, default: int) -> int:
        """N for a scenario: `--n` when given, else the scenario's default."""
        return self.n if self.n is not None else default


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def interleave(
    scenario: str, runs: int, systems: Mapping[str, Measure], units: Mapping[str, str]
) -> list[Series]:
    """Run every system once per round, alternating the order each round, `runs` rounds.

    Interleaving spreads whatever else the machine does over all systems alike.
    """
    found: dict[tuple[str, str], Series] = {}
    names = list(systems)
    for run in range(runs):
        for system in names if run % 2 == 0 else names[::-1]:
            figures = systems[system](run)
            shown = ", ".join(f"{metric} {value:.4g}" for metric, value in figures.items())
            say(f"  {scenario} run {run + 1}/{runs} {system}: {shown}")
            for metric, value in figures.items():
                key = (system, metric)
                if key not in found:
                    found[key] = Series(system, metric, units.get(metric, ""))
                found[key].values.append(value)
    return list(found.values())
