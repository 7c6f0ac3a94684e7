"""Run the `conveyor` CLI as a user would: its own process, a chosen directory, a clean env."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
TRACEBACK_MARKERS = ("Traceback", "╭─", 'File "')


@dataclass(frozen=True)
class Ran:
    """What a CLI run printed and how it exited."""

    code: int
    out: str
    err: str

    @property
    def problem_lines(self) -> list[str]:
        """The `conveyor:` lines on stderr."""
        return [line for line in self.err.splitlines() if line.startswith("conveyor:")]

    def assert_one_clean_line(self) -> str:
        """The run failed with exactly one `conveyor:` line and no traceback; returns it."""
        assert self.code != 0, self.out + self.err
        assert not any(marker in self.err for marker in TRACEBACK_MARKERS), self.err
        assert len(self.err.strip().splitlines()) == 1, self.err
        assert self.problem_lines, self.err
        return self.problem_lines[0]


def conveyor(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
    """Run `python -m workers.cli ARGS` in `cwd`, with no CONVEYOR_* variable but `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(result.returncode, result.stdout, result.stderr)
