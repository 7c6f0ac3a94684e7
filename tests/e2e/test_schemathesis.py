"""Schemathesis against a real API process: every check, stateful links, no server error.

Bounded (a few examples per operation, a time budget) so it fits the suite; the report's
failures are read from its JUnit file, and any failure of the gated checks fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET  # our own report file, not untrusted input
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config.settings import Settings
from store.keys import IssuedKey
from tests.e2e.stack import api_process, stack_env, worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_EXAMPLES = 8
MAX_TIME_S = 50


def schemathesis() -> list[str]:
    """The schemathesis CLI of this interpreter's environment."""
    st = Path(sys.executable).with_name("st")
    found = str(st) if st.exists() else shutil.which("st")
    assert found, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    return [found]


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    fresh_settings: Settings, key: IssuedKey, sandbox_url: str, logs_dir: Path, tmp_path: Path
) -> None:
    # Given the API served by uvicorn on its own SQLite database, a worker (so long polls end
    # when their job does, not at their full `wait`), and a tenant's key
    env = stack_env(fresh_settings.database_url, fresh_settings.broker_key_prefix, sandbox_url)
    # Keys that seal tenants' secrets: without them those routes answer 503 (not configured)
    env["CONVEYOR_DATA_SECRET_KEY"] = Fernet.generate_key().decode()
    env["CONVEYOR_WEBHOOK_SECRET_KEY"] = Fernet.generate_key().decode()
    with worker_process(env, logs_dir), api_process(env, logs_dir) as url:
        # When schemathesis runs every check, all phases (stateful: submit -> read/cancel/retry)
        junit = tmp_path / "junit.xml"
        run = subprocess.run(
            [
                *schemathesis(),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                # Schema-valid is not always acceptable here, by design: a payload must fit its
                # job type, a refund a captured payment, a webhook its signature; the schema
                # cannot say so, and such requests rightly answer 4xx.
                "--exclude-checks",
                "positive_data_acceptance",
                # A long poll on a job scheduled for later holds for its full `wait` (<= 30 s).
                "--request-timeout",
                "35",
                "--max-response-time",
                "35",
                # One worker: CPython 3.11's ast.parse, used by hypothesis to describe lambdas, is
                # not thread-safe ("AST constructor recursion depth mismatch").
                "--workers",
                "1",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--max-time",
                str(MAX_TIME_S),
                "--seed",
                "11",
                "--header",
                f"Authorization: Bearer {key.secret}",
                "--report",
                "junit",
                "--report-junit-path",
                str(junit),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=MAX_TIME_S * 3,
            check=False,
        )
    output = run.stdout + run.stderr
    print(output)
    # Then it ran, and found no server error and no failing check
    assert junit.exists(), output[-3000:]
    failures = [
        f"{case.get('name')}: {(problem.get('message') or '')[:300]}"
        for case in ET.parse(junit).getroot().iter("testcase")  # noqa: S314
        for problem in [*case.findall("failure"), *case.findall("error")]
    ]
    assert "Server error" not in output, output[-6000:]
    assert failures == [], "\n".join(failures)
    assert run.returncode == 0, output[-6000:]
