"""The benchmark runs end to end on tiny numbers; no figure is asserted, only that it all worked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


@pytest.mark.e2e
@pytest.mark.slow
def test_all_scenarios_print_a_table_and_write_json(tmp_path: Path) -> None:
    # Given a JSON path of this test's own
    out = tmp_path / "bench.json"

    # When every scenario runs once on 20 jobs
    done = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--n", "20", "--runs", "1", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    # Then it exits cleanly, prints the table, and writes one entry per scenario
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scenario" in done.stdout
    assert "ratios (conveyor median / baseline median)" in done.stdout
    document = json.loads(out.read_text())
    entries = {entry["scenario"]: entry for entry in document["scenarios"]}
    assert set(entries) == set(SCENARIOS)
    for entry in entries.values():
        assert entry["series"], entry["scenario"]
        assert all(len(s["values"]) == 1 for s in entry["series"])
