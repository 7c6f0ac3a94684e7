"""A real Flower process admits only the exact password, keeps /metrics behind it, and has no
control API; credentials that cannot be passed exactly stop it at start-up."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.procs import ROOT, Proc, free_port, http_ok, python_argv, wait_until

pytestmark = pytest.mark.e2e

USER = "ops"
# Each password is a trap for a parser that splits or trims: commas, colons, spaces, Unicode.
PASSWORDS = [",secret", "pre,fix", "a:b:c", " spaced pass ", "pässwörd✓€"]


def basic(user: str, password: str) -> dict[str, str]:
    """The Authorization header a browser sends (UTF-8 per RFC 7617)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def flowers(logs_dir: Path, broker_prefix: str) -> Iterator[dict[str, str]]:
    """One Flower per awkward password, started together; password -> base URL."""
    procs: list[Proc] = []
    urls: dict[str, str] = {}
    try:
        for index, password in enumerate(PASSWORDS):
            port = free_port()
            env = {
                "CONVEYOR_FLOWER_USER": USER,
                "CONVEYOR_FLOWER_PASSWORD": password,
                "CONVEYOR_BROKER_KEY_PREFIX": f"{broker_prefix}flowergate:",
                # A deployer's leftover Flower auth must not open another way in.
                "FLOWER_BASIC_AUTH": "ops:,x",
            }
            argv = python_argv("-m", "workers.cli", "flower", "--port", str(port))
            procs.append(Proc(f"flower-gate-{index}", argv, env, logs_dir))
            urls[password] = f"http://127.0.0.1:{port}"
        for proc, url in zip(procs, urls.values(), strict=True):
            wait_until(http_ok(f"{url}/healthcheck"), f"{proc.name} to answer", 60, [proc])
        yield urls
    finally:
        for proc in procs:
            proc.stop()


@pytest.mark.parametrize("password", PASSWORDS)
def test_flower_admits_only_the_exact_password(flowers: dict[str, str], password: str) -> None:
    # Given Flower running with an awkward password
    url = flowers[password]
    near_misses = ({*password.split(","), password.strip(), "", "x"} - {password}) | {password[:-1]}
    # When the dashboard and /metrics are fetched with the exact password and with near misses
    exact = [
        requests.get(f"{url}{path}", headers=basic(USER, password), timeout=10)
        for path in ("/", "/tasks", "/workers", "/metrics")
    ]
    anonymous = requests.get(f"{url}/metrics", timeout=10)
    misses = {
        miss: requests.get(f"{url}/metrics", headers=basic(USER, miss), timeout=10).status_code
        for miss in near_misses
    }
    bare_piece = requests.get(
        f"{url}/metrics",
        headers={"Authorization": "Basic " + base64.b64encode(b"x").decode()},
        timeout=10,
    )
    # Then only the exact password opens the pages and the metrics
    assert [r.status_code for r in exact] == [200, 200, 200, 200]
    assert "flower_events_total" in exact[3].text or "# HELP" in exact[3].text
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert misses == dict.fromkeys(near_misses, 401)
    assert bare_piece.status_code == 401


def test_flower_control_api_is_off_even_with_the_password(flowers: dict[str, str]) -> None:
    # Given Flower and its password
    password = PASSWORDS[0]
    url = flowers[password]
    # When the control endpoints are called, with and without credentials
    control = [
        "/api/task/async-apply/data.sandbox.fetch_rates",
        "/api/task/send-task/data.sandbox.fetch_rates",
        "/api/worker/pool/grow/conveyor@host",
        "/api/worker/shutdown/conveyor@host",
        "/api/task/revoke/some-task-id",
    ]
    authed = [
        requests.post(f"{url}{path}", headers=basic(USER, password), json={}, timeout=10)
        for path in control
    ]
    anonymous = [requests.post(f"{url}{path}", json={}, timeout=10) for path in control]
    # Then none of them runs: 403 for the operator, 401 for anyone else
    assert [r.status_code for r in authed] == [403] * len(control)
    assert [r.status_code for r in anonymous] == [401] * len(control)


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [("ad:min", "secret-pass", "contains ':'"), ("admin", "line\nbreak", "control character")],
)
def test_flower_refuses_to_start_with_credentials_it_cannot_check_exactly(
    user: str, password: str, message: str
) -> None:
    # Given credentials basic auth cannot carry exactly
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("CONVEYOR_")},
        "CONVEYOR_FLOWER_USER": user,
        "CONVEYOR_FLOWER_PASSWORD": password,
    }
    # When `conveyor flower` is started
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "flower", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it exits at once, saying why, without echoing the password
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert password not in result.stderr
