"""The CLI says what is wrong, where, and the command that fixes it: one line, no traceback.

Each test runs `conveyor` as its own process in a directory of its own, as a user would.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from store.migrate import upgrade
from tests.support.procs import Proc, free_port, http_ok, wait_until
from tests.workers.cli_support import UNREACHABLE_REDIS, conveyor

pytestmark = pytest.mark.slow

# Stands for a port free when the test runs (`--port 0` would mean the configured default).
FREE = "<free port>"
FLOWER_AUTH = {"CONVEYOR_FLOWER_USER": "ops", "CONVEYOR_FLOWER_PASSWORD": "s3cret-pass"}
# Every command that opens the database (and does not create it, as `migrate` and `up` do).
DB_COMMANDS = [
    ("keys", "create", "--tenant", "acme"),
    ("reconcile",),
    ("status",),
    ("api", "--port", FREE),
    ("worker",),
    ("beat",),
]


def _run_args(args: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(free_port()) if arg == FREE else arg for arg in args)


@pytest.fixture
def up_ports() -> dict[str, str]:
    """Free ports for every listener of `conveyor up`."""
    sandbox = free_port()
    return {
        "CONVEYOR_API_PORT": str(free_port()),
        "CONVEYOR_FLOWER_PORT": str(free_port()),
        "CONVEYOR_SANDBOX_PORT": str(sandbox),
        "CONVEYOR_SANDBOX_URL": f"http://127.0.0.1:{sandbox}",
    }


@pytest.fixture
def foreign_port(tmp_path: Path) -> Iterator[tuple[int, Proc]]:
    """Another stack's server (Python's http.server) on a free port."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = Proc(f"other-stack-{port}", argv, {}, tmp_path)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/"), f"http.server on port {port}")
        yield port, proc
    finally:
        proc.stop()


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: a[0])
def test_outside_the_project_a_db_command_names_the_missing_file_and_creates_nothing(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    # Given a directory without Conveyor's database (the default URL is relative)
    # When a command that needs the database runs there
    ran = conveyor(*_run_args(args), cwd=tmp_path)
    # Then one line names the file it looked for and `conveyor migrate`
    line = ran.assert_one_clean_line()
    assert str(tmp_path / "var" / "conveyor.db") in line
    assert "`conveyor migrate`" in line
    assert "no such table" not in ran.err
    # And no empty database was left behind
    assert not (tmp_path / "var").exists()


def test_a_database_behind_the_code_asks_for_conveyor_migrate(tmp_path: Path) -> None:
    # Given a SQLite database migrated only to the first revision
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(Settings(_env_file=None, database_url=url), "0001")
    # When a key is created against it
    ran = conveyor(
        "keys", "create", "--tenant", "acme", cwd=tmp_path, env={"CONVEYOR_DATABASE_URL": url}
    )
    # Then the revision it is at and the fix are named
    line = ran.assert_one_clean_line()
    assert "schema revision 0001" in line and "`conveyor migrate`" in line


def test_migrate_outside_the_project_creates_the_database_and_says_where(tmp_path: Path) -> None:
    # Given an empty directory, When `conveyor migrate` runs there
    ran = conveyor("migrate", cwd=tmp_path)
    # Then the database is created and its absolute path printed
    assert ran.code == 0, ran.err
    assert ran.out.strip() == f"migrated {tmp_path / 'var' / 'conveyor.db'}"
    # And a command needing the database now works there
    assert conveyor("keys", "create", "--tenant", "acme", cwd=tmp_path).out.startswith("cvk_")


def test_migrate_against_an_unreachable_postgresql_names_the_server(tmp_path: Path) -> None:
    # Given a PostgreSQL URL where nothing listens
    url = f"postgresql+psycopg://conveyor:hunter2@127.0.0.1:{free_port()}/conveyor"
    # When `conveyor migrate` runs
    ran = conveyor("migrate", cwd=tmp_path, env={"CONVEYOR_DATABASE_URL": url})
    # Then one line names the server (password hidden), the cause and the setting
    line = ran.assert_one_clean_line()
    assert "cannot reach the database at postgresql+psycopg://conveyor:***@127.0.0.1" in line
    assert "Connection refused" in line and "CONVEYOR_DATABASE_URL" in line
    assert "hunter2" not in ran.err and "OperationalError" not in ran.err


@pytest.mark.parametrize(
    ("args", "extra"),
    [(("worker",), {}), (("beat",), {}), (("flower", "--port", FREE), FLOWER_AUTH)],
    ids=["worker", "beat", "flower"],
)
def test_with_redis_down_a_broker_command_names_the_url_and_says_start_redis(
    args: tuple[str, ...], extra: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    # Given a migrated database and a broker URL where no Redis listens
    env = {"CONVEYOR_DATABASE_URL": sqlite_url, "CONVEYOR_BROKER_URL": UNREACHABLE_REDIS, **extra}
    # When the process is started
    ran = conveyor(*_run_args(args), cwd=tmp_path, env=env, timeout=30)
    # Then it exits at once with one line: what, where, and the fix
    line = ran.assert_one_clean_line()
    assert f"cannot reach the broker at {UNREACHABLE_REDIS}" in line
    assert "start Redis" in line
    assert "OperationalError" not in ran.err and "not ready after" not in ran.err


def test_conveyor_up_with_redis_down_starts_nothing_and_says_start_redis(
    tmp_path: Path, up_ports: dict[str, str]
) -> None:
    # Given free ports but no Redis at the broker URL
    env = {**up_ports, "CONVEYOR_BROKER_URL": UNREACHABLE_REDIS}
    # When `conveyor up` runs
    ran = conveyor("up", "--exit-after-demo", cwd=tmp_path, env=env, timeout=60)
    # Then it names the broker and never claims to be up
    line = ran.assert_one_clean_line()
    assert UNREACHABLE_REDIS in line and "start Redis" in line
    assert "Conveyor is up" not in ran.out
    assert "not ready after" not in ran.err and "OperationalError" not in ran.err


@pytest.mark.parametrize(
    "variable", ["CONVEYOR_API_PORT", "CONVEYOR_FLOWER_PORT", "CONVEYOR_SANDBOX_PORT"]
)
def test_conveyor_up_with_a_port_taken_names_the_port_and_its_holder_and_starts_nothing(
    variable: str,
    foreign_port: tuple[int, Proc],
    tmp_path: Path,
    up_ports: dict[str, str],
    broker_prefix: str,
) -> None:
    # Given another stack's server holding one of the ports `conveyor up` needs
    port, other = foreign_port
    env = {**up_ports, variable: str(port), "CONVEYOR_BROKER_KEY_PREFIX": f"{broker_prefix}up:"}
    if variable == "CONVEYOR_SANDBOX_PORT":
        env["CONVEYOR_SANDBOX_URL"] = f"http://127.0.0.1:{port}"
    # When `conveyor up` runs
    ran = conveyor("up", "--exit-after-demo", cwd=tmp_path, env=env, timeout=60)
    # Then one line names the port, the holder's pid and command, and the setting to change
    line = ran.assert_one_clean_line()
    assert f"port {port} (" in line and f"pid {other.pid}" in line and "http.server" in line
    assert variable in line
    # And nothing was started, migrated or announced
    assert "Conveyor is up" not in ran.out
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    "args",
    [("api", "--port", FREE), ("worker",), ("beat",), ("flower", "--port", FREE), ("up",)],
    ids=lambda a: a[0],
)
def test_production_refuses_to_start_on_placeholder_secrets_naming_each(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    # Given CONVEYOR_ENV=production and every other setting at its default
    env = {"CONVEYOR_ENV": "production", **FLOWER_AUTH}
    # When a long-running process starts
    ran = conveyor(*_run_args(args), cwd=tmp_path, env=env, timeout=30)
    # Then it exits 2 with one line naming every placeholder secret and SQLite, no values
    line = ran.assert_one_clean_line()
    assert ran.code == 2
    for variable in (
        "CONVEYOR_SANDBOX_API_KEY",
        "CONVEYOR_STRIPE_API_KEY",
        "CONVEYOR_STRIPE_WEBHOOK_SECRET",
        "CONVEYOR_ADYEN_API_KEY",
        "CONVEYOR_ADYEN_HMAC_KEY",
        "CONVEYOR_DATABASE_URL",
    ):
        assert variable in line
    assert "whsec_sandbox" not in ran.err and "44782def" not in ran.err
    assert not (tmp_path / "var").exists()


def test_an_invalid_setting_is_named_in_one_line(tmp_path: Path) -> None:
    # Given a CONVEYOR_ENV that is neither development nor production
    # When a process starts
    ran = conveyor("api", cwd=tmp_path, env={"CONVEYOR_ENV": "prod"})
    # Then it exits 2 naming the variable
    line = ran.assert_one_clean_line()
    assert ran.code == 2 and "CONVEYOR_ENV" in line


def test_demo_against_a_stopped_api_says_start_the_stack(tmp_path: Path) -> None:
    # Given no API at the URL
    url = f"http://127.0.0.1:{free_port()}"
    # When the demo runs against it
    ran = conveyor("demo", "--api-key", "cvk_x", "--api-url", url, cwd=tmp_path)
    # Then one line names the URL and `conveyor up`
    line = ran.assert_one_clean_line()
    assert url in line and "`conveyor up`" in line


def test_status_with_the_broker_down_names_it_in_one_line(tmp_path: Path) -> None:
    # Given a migrated database and a broker URL where nothing listens
    ran_migrate = conveyor("migrate", cwd=tmp_path)
    assert ran_migrate.code == 0, ran_migrate.err
    # When `conveyor status` runs
    ran = conveyor("status", cwd=tmp_path, env={"CONVEYOR_BROKER_URL": UNREACHABLE_REDIS})
    # Then one line names the broker, with no traceback
    line = ran.assert_one_clean_line()
    assert UNREACHABLE_REDIS in line and "start Redis" in line
