"""The data-sync scenario runs end to end on a few pages; no figure is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scenarios import data_sync
from tests.bench.test_extended_smoke import run_bench


@pytest.mark.e2e
@pytest.mark.slow
def test_data_sync_runs_on_a_few_pages(tmp_path: Path) -> None:
    # Given 500 records (5 pages) on SQLite
    args = ["data-sync", "--n", "500", "--runs", "1", "--db", "sqlite"]
    # When the scenario runs once
    entries = run_bench(tmp_path / "data-sync.json", *args)
    # Then both systems have figures, and Conveyor's round trips per page were counted
    entry = entries[data_sync.NAME]
    systems = {(s["system"], s["metric"]) for s in entry["series"]}
    assert ("conveyor", "records_per_s") in systems
    assert (data_sync.BASELINE, "records_per_s") in systems
    trips = next(s for s in entry["series"] if s["metric"] == "db_round_trips_per_page")
    assert 0 < trips["median"] < 10
