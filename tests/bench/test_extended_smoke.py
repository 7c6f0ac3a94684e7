"""The extended scenarios run end to end on tiny numbers; no figure is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.scenarios import growth, memory, webhooks

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


def run_bench(out: Path, *args: str) -> dict[str, dict[str, Any]]:
    """Run `python -m bench ARGS --json OUT`; its entries by scenario, once it exited cleanly."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    return {entry["scenario"]: entry for entry in document["scenarios"]}


@pytest.mark.e2e
@pytest.mark.slow
def test_growth_runs_on_small_tables(tmp_path: Path) -> None:
    # Given tables of 200 and 2,000 rows on SQLite
    args = ["growth", "--rows-small", "200", "--rows-large", "2000", "--n", "20", "--runs", "1"]

    # When the scenario runs once
    entries = run_bench(tmp_path / "growth.json", *args, "--db", "sqlite")

    # Then it wrote its figures and a plan per maintenance query
    entry = entries[growth.NAME]
    assert entry["series"]
    assert entry["details"]["plans"]


@pytest.mark.e2e
@pytest.mark.slow
def test_memory_runs_with_a_short_soak(tmp_path: Path) -> None:
    # Given 2,000 waiting jobs and a 10-second soak
    args = ["memory", "--waiting", "2000", "--soak-s", "10", "--runs", "1"]

    # When the scenario runs once
    entries = run_bench(tmp_path / "memory.json", *args)

    # Then it wrote its figures and the RSS samples they come from
    entry = entries[memory.NAME]
    assert entry["series"]
    assert entry["details"]["samples"]


@pytest.mark.e2e
@pytest.mark.slow
def test_webhooks_runs_on_a_small_burst(tmp_path: Path) -> None:
    # Given a burst of 20 events (and the paced ones) / When the scenario runs once
    entries = run_bench(tmp_path / "webhooks.json", "webhooks", "--n", "20", "--runs", "1")
    # Then it wrote Conveyor's figures and the bare-HTTP baseline's
    entry = entries[webhooks.NAME]
    assert {s["system"] for s in entry["series"]} == {"conveyor", webhooks.BASELINE}
