"""The README's quick start: `conveyor up` brings the stack up and the demo jobs succeed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.settings import Settings
from store.keys import IssuedKey
from tasks.publish import producer_app, publish
from tests.e2e.stack import stack_env, worker_process
from tests.support.procs import ROOT, Proc, free_port, http_ok, python_argv, wait_until
from tests.tasks.factories import RATES, make_job

pytestmark = pytest.mark.e2e


def test_conveyor_up_runs_the_demo_end_to_end_on_embedded_defaults(
    tmp_path: Path, broker_prefix: str
) -> None:
    # Given a fresh directory (so SQLite starts empty) and free ports for every process
    sandbox_port = free_port()
    env = {
        "CONVEYOR_BROKER_KEY_PREFIX": f"{broker_prefix}up:",
        "CONVEYOR_API_PORT": str(free_port()),
        "CONVEYOR_FLOWER_PORT": str(free_port()),
        "CONVEYOR_SANDBOX_PORT": str(sandbox_port),
        "CONVEYOR_SANDBOX_URL": f"http://127.0.0.1:{sandbox_port}",
        "CONVEYOR_LOG_JSON": "false",
    }
    # When `conveyor up --exit-after-demo` runs there
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "up", "--exit-after-demo"],
        cwd=tmp_path,
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    # Then it migrated the embedded SQLite database, said where things listen, the demo passed
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert (tmp_path / "var" / "conveyor.db").exists()
    out = result.stdout
    assert "/docs" in out and "Flower" in out
    assert re.search(r"Flower\s+\S+\s+user admin password \S+", out), out
    assert "Demo finished: every job ended as expected." in out
    assert out.count("[ok]") == 3


def test_flower_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    # Given no Flower credentials in the environment
    env = {k: v for k, v in _base_env().items() if not k.startswith("CONVEYOR_FLOWER")}
    # When `conveyor flower` is started
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "flower", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it exits with a usage error that says why
    assert result.returncode == 2
    assert "refusing to start Flower without auth" in result.stderr


def test_flower_answers_only_with_basic_auth(logs_dir: Path, broker_prefix: str) -> None:
    # Given Flower started with credentials
    port = free_port()
    env = {
        "CONVEYOR_FLOWER_USER": "ops",
        "CONVEYOR_FLOWER_PASSWORD": "s3cret-pass",
        "CONVEYOR_BROKER_KEY_PREFIX": broker_prefix,
    }
    proc = Proc(
        "flower", python_argv("-m", "workers.cli", "flower", "--port", str(port)), env, logs_dir
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/healthcheck"), f"Flower on port {port} to answer /healthcheck")
        # When pages are fetched without and with credentials
        anonymous = requests.get(f"{url}/", timeout=5)
        wrong = requests.get(f"{url}/", auth=("ops", "nope"), timeout=5)
        authed = requests.get(f"{url}/tasks", auth=("ops", "s3cret-pass"), timeout=5)
    finally:
        proc.stop()
    # Then only the authenticated request gets in
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert authed.status_code == 200


def test_readme_quick_start_is_exactly_the_two_make_commands() -> None:
    # Given the README and the CI entry point
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    # When the quick start section's fenced block is read
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:\w+)?\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    # Then it holds the two commands, and CI runs the second one
    assert commands == ["make up", "make test"]
    assert re.search(r"^exec make test$", ci, re.M)


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_flower_shows_the_named_tasks_the_workers_ran(
    settings: Settings, tenant_key: IssuedKey, sandbox: str, logs_dir: Path
) -> None:
    # Given a worker and Flower on this test's broker prefix
    env = {
        **stack_env(settings.database_url, settings.broker_key_prefix, sandbox),
        "CONVEYOR_FLOWER_USER": "ops",
        "CONVEYOR_FLOWER_PASSWORD": "s3cret-pass",
    }
    port = free_port()
    flower = Proc(
        "flower-tasks",
        python_argv("-m", "workers.cli", "flower", "--port", str(port)),
        env,
        logs_dir,
    )
    url = f"http://127.0.0.1:{port}"
    auth = ("ops", "s3cret-pass")
    try:
        wait_until(http_ok(f"{url}/healthcheck"), f"Flower on port {port}")
        with worker_process(env, logs_dir, "flowered"):
            # When jobs run (workers send task events once Flower's enable_events, sent every
            # 5 s, reaches them: a job every half second until one is listed)
            last_submit = 0.0

            def seen() -> bool:
                nonlocal last_submit
                if time.monotonic() - last_submit > 0.5:
                    job_id = make_job(
                        settings, tenant_key.tenant_id, "data.sandbox.fetch_rates", RATES
                    )
                    publish(producer_app(settings), job_id, "data.sandbox.fetch_rates", "data")
                    last_submit = time.monotonic()
                tasks = requests.get(f"{url}/api/tasks", auth=auth, timeout=5).json()
                return any(t.get("name") == "data.sandbox.fetch_rates" for t in tasks.values())

            # Then Flower switches the worker's task events on and lists the job's task
            wait_until(seen, "Flower to list a data.sandbox.fetch_rates task", 30)
    finally:
        flower.stop()
