"""The printed table and the JSON file of a benchmark session."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import ScenarioResult

HEADER = ("scenario", "metric", "system", "median", "min", "max", "unit")
NUMERIC = frozenset({3, 4, 5})


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"


def render(results: Sequence[ScenarioResult]) -> str:
    """Tables of figures, then each ratio with its target."""
    rows: list[tuple[str, ...]] = [HEADER]
    for result in results:
        for s in result.series:
            rows.append(
                (
                    result.name,
                    s.metric,
                    s.system,
                    _fmt(s.median),
                    _fmt(min(s.values)),
                    _fmt(max(s.values)),
                    s.unit,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.rjust(width) if i in NUMERIC else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append("ratios (conveyor median / baseline median)")
    ratios = [(result.name, ratio) for result in results for ratio in result.ratios()]
    width = max((len(ratio.target.label()) for _, ratio in ratios), default=0)
    for name, ratio in ratios:
        t = ratio.target
        shown = "n/a" if ratio.value is None else f"{ratio.value:.2f}x"
        verdict = {True: "met", False: "NOT met", None: "skipped"}[ratio.met]
        lines.append(
            f"  {name:<13} {t.label():<{width}} {shown:>8}  target {t.describe():<6} {verdict}"
        )
    lines += ["", "parameters and notes"]
    for result in results:
        params = ", ".join(f"{key}={value}" for key, value in result.params.items())
        lines.append(f"  {result.name}: {params}")
        lines += [f"  {result.name}: {note}" for note in result.notes]
    return "\n".join(lines)


def _commit() -> str | None:
    """The checked-out commit, so figures can be tied to code (read-only: `git rev-parse`)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def default_path(scenario: str, now: datetime) -> Path:
    """`var/bench/<scenario>-<timestamp>.json`."""
    return Path("var/bench") / f"{scenario}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def write_json(
    path: Path, scenario: str, argv: Sequence[str], results: Sequence[ScenarioResult], now: datetime
) -> None:
    """Write the session's figures with enough context to compare runs later."""
    document: dict[str, Any] = {
        "scenario": scenario,
        "started_at": now.astimezone(UTC).isoformat(),
        "argv": list(argv),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios": [r.as_dict() for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
