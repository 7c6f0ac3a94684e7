"""The scenarios: `all` runs the first five in order, `extended` the long ones."""

from __future__ import annotations

from collections.abc import Callable

from bench.results import ScenarioResult
from bench.runner import Options
from bench.scenarios import (
    data_sync,
    e2e_io,
    e2e_noop,
    growth,
    ingest,
    ingest_batch,
    latency,
    memory,
    webhooks,
)

Scenario = Callable[[Options], ScenarioResult]

SCENARIOS: dict[str, Scenario] = {
    ingest.NAME: ingest.run,
    ingest_batch.NAME: ingest_batch.run,
    e2e_noop.NAME: e2e_noop.run,
    e2e_io.NAME: e2e_io.run,
    latency.NAME: latency.run,
}
# Minutes each, so never part of `all` (which CI smoke-tests).
EXTENDED: dict[str, Scenario] = {
    growth.NAME: growth.run,
    memory.NAME: memory.run,
    data_sync.NAME: data_sync.run,
    webhooks.NAME: webhooks.run,
}
GROUPS: dict[str, dict[str, Scenario]] = {"all": SCENARIOS, "extended": EXTENDED}

# Where a scenario differs from the command line's defaults when a flag is not given.
DEFAULT_DB: dict[str, str] = {growth.NAME: growth.DEFAULT_DB}
DEFAULT_RUNS: dict[str, int] = {memory.NAME: memory.DEFAULT_RUNS}
