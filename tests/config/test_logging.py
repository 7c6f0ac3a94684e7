"""Log lines honour the configured level; what passes is rendered as one JSON object per line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.procs import ROOT

SCRIPT = """
import structlog
from config.logging import configure_logging
from config.settings import Settings
configure_logging(Settings(_env_file=None, log_level="WARNING", log_json=True))
log = structlog.get_logger("probe")
log.info("below.level", n=1)
log.warning("at.level", n=2)
"""


def test_lines_below_the_level_are_dropped_and_the_rest_are_json() -> None:
    # Given a process logging at WARNING, in JSON
    # When it logs one INFO and one WARNING line
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    # Then only the WARNING line is written, as JSON with its fields
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [(line["event"], line["n"], line["level"]) for line in lines] == [
        ("at.level", 2, "warning")
    ]
