"""The scenarios, in the order `all` runs them."""

from __future__ import annotations

from collections.abc import Callable

from bench.results import ScenarioResult
from bench.runner import Options
from bench.scenarios import e2e_io, e2e_noop, ingest, ingest_batch, latency

Scenario = Callable[[Options], ScenarioResult]

SCENARIOS: dict[str, Scenario] = {
    ingest.NAME: ingest.run,
    ingest_batch.NAME: ingest_batch.run,
    e2e_noop.NAME: e2e_noop.run,
    e2e_io.NAME: e2e_io.run,
    latency.NAME: latency.run,
}
