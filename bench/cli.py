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
from bench.scenarios import DEFAULT_DB, DEFAULT_RUNS, EXTENDED, GROUPS, SCENARIOS, growth, memory

ALL = "all"
MIN_COUNT = 1
RUNS = 3
DB = "sqlite"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Conveyor against raw Celery and Dramatiq, interleaved.",
    )
    p.add_argument("scenario", choices=[*SCENARIOS, *EXTENDED, *GROUPS])
    p.add_argument("--n", type=int, default=None, help="jobs per run (default: per scenario)")
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"interleaved runs per system (default {RUNS}; memory {memory.DEFAULT_RUNS})",
    )
    p.add_argument(
        "--db",
        choices=KINDS,
        default=None,
        help=f"Conveyor's database (default {DB}; growth {growth.DEFAULT_DB})",
    )
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="where to create bench_<random> (with --db postgresql)",
    )
    p.add_argument(
        "--json", type=Path, default=None, help="default var/bench/<scenario>-<time>.json"
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    extended = p.add_argument_group("extended scenarios")
    extended.add_argument(
        "--rows-small",
        type=int,
        default=None,
        help=f"growth: rows in the small table (default {growth.DEFAULT_ROWS_SMALL:,})",
    )
    extended.add_argument(
        "--rows-large",
        type=int,
        default=None,
        help=f"growth: rows in the large table (default {growth.DEFAULT_ROWS_LARGE:,})",
    )
    extended.add_argument(
        "--waiting",
        type=int,
        default=None,
        help=f"memory: jobs waiting to retry (default {memory.DEFAULT_WAITING:,})",
    )
    extended.add_argument(
        "--soak-s",
        type=float,
        default=None,
        help=f"memory: length of the soak (default {memory.DEFAULT_SOAK_S:.0f})",
    )
    return p


def _check(args: argparse.Namespace) -> None:
    counts = {
        "--runs": args.runs,
        "--n": args.n,
        "--rows-small": args.rows_small,
        "--rows-large": args.rows_large,
        "--waiting": args.waiting,
    }
    for flag, value in counts.items():
        if value is not None and value < MIN_COUNT:
            parser().error(f"{flag} must be at least {MIN_COUNT}")
    if args.soak_s is not None and args.soak_s <= 0:
        parser().error("--soak-s must be positive")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios, print the table, write the JSON; 1 if a scenario failed."""
    args = parser().parse_args(argv)
    _check(args)
    group = GROUPS.get(args.scenario)
    names = list(group) if group else [args.scenario]
    chosen = SCENARIOS | EXTENDED
    now = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    results: list[ScenarioResult] = []
    failed: list[str] = []
    for name in names:
        scenario_dir = workdir / name
        scenario_dir.mkdir()
        db = args.db or DEFAULT_DB.get(name, DB)
        runs = args.runs or DEFAULT_RUNS.get(name, RUNS)
        opts = Options(
            args.n,
            runs,
            db,
            args.postgres_url,
            scenario_dir,
            rows_small=args.rows_small,
            rows_large=args.rows_large,
            waiting=args.waiting,
            soak_s=args.soak_s,
        )
        say(f"{name}: {runs} run(s) on {db}, logs in {scenario_dir}")
        try:
            results.append(chosen[name](opts))
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
