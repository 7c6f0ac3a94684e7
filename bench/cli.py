"""`python -m bench SCENARIO [--n N] [--runs R] [--db sqlite|postgresql] [--json PATH]`."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.databases import DEFAULT_POSTGRES_URL, KINDS
from bench.procs import BenchError
from bench.report import default_path, render, write_json
from bench.results import ScenarioResult
from bench.runner import Options, say
from bench.scenarios import SCENARIOS

ALL = "all"
MIN_RUNS = 1


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Conveyor against raw Celery and Dramatiq, interleaved.",
    )
    p.add_argument("scenario", choices=[*SCENARIOS, ALL])
    p.add_argument("--n", type=int, default=None, help="jobs per run (default: per scenario)")
    p.add_argument("--runs", type=int, default=3, help="interleaved runs per system (default 3)")
    p.add_argument("--db", choices=KINDS, default="sqlite", help="Conveyor's database")
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="where to create bench_<random> (with --db postgresql)",
    )
    p.add_argument(
        "--json", type=Path, default=None, help="default var/bench/<scenario>-<time>.json"
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios, print the table, write the JSON; 1 if a scenario failed."""
    args = parser().parse_args(argv)
    if args.runs < MIN_RUNS or (args.n is not None and args.n < 1):
        parser().error("--runs and --n must be at least 1")
    names = list(SCENARIOS) if args.scenario == ALL else [args.scenario]
    now = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    results: list[ScenarioResult] = []
    failed: list[str] = []
    for name in names:
        scenario_dir = workdir / name
        scenario_dir.mkdir()
        opts = Options(args.n, args.runs, args.db, args.postgres_url, scenario_dir)
        say(f"{name}: {args.runs} run(s) on {args.db}, logs in {scenario_dir}")
        try:
            results.append(SCENARIOS[name](opts))
        except BenchError as exc:
            say(f"{name}: FAILED: {exc}")
            failed.append(name)
    print(render(results))
    path = args.json or default_path(args.scenario, now)
    write_json(path, args.scenario, sys.argv[1:] if argv is None else argv, results, now)
    print(f"\nwrote {path}")
    if failed or args.keep_logs:
        say(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        say(f"failed: {', '.join(failed)}")
        return 1
    return 0
