"""The container deployment: docker-compose.yml and the Dockerfile, checked by parsing them.

No Docker engine is needed; these tests read the files the way a reviewer would.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

EXPECTED_SERVICES = {"redis", "postgres", "migrate", "api", "worker", "beat", "flower", "sandbox"}
APP_SERVICES = {"migrate", "api", "worker", "beat", "flower", "sandbox"}
CONVEYOR_SUBCOMMANDS = {"api", "worker", "beat", "flower", "migrate"}
SANDBOX_COMMAND = ["python", "-m", "integrations.sandbox"]
ONE_SHOT_SERVICES = {"migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as data (YAML anchors and `<<` merges resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose file's services by name."""
    found = compose["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, args = stripped.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


CHECKED_PROCESS_SERVICES = {"api", "worker", "beat", "flower"}
REQUIRED_FROM_ENV = re.compile(r"\$\{(?P<var>[A-Z_]+):\?[^}]*\}")


def _from_env(value: str) -> str:
    """Stand a deployer's own value in for every required `${VAR:?…}` in a compose value."""
    return REQUIRED_FROM_ENV.sub(lambda m: f"own-{m.group('var').lower()}-value", value)


def test_compose_file_uses_the_compose_spec_without_a_version_key(compose):
    # Given the parsed compose file
    # When we look at its top-level keys
    # Then the obsolete `version:` key is absent
    assert "version" not in compose


def test_every_part_of_the_stack_is_a_service(services):
    # Given the parsed compose file
    # When we list its services
    # Then broker, database, migration, sandbox and every Conveyor process are present
    assert set(services) >= EXPECTED_SERVICES


def test_every_long_running_service_has_a_healthcheck_with_a_test(services):
    # Given every service except the one-shot migration
    for name in sorted(set(services) - ONE_SHOT_SERVICES):
        # When we read its healthcheck
        healthcheck = services[name].get("healthcheck")
        # Then it has a test command and the timing knobs that make it meaningful
        assert healthcheck, f"{name} has no healthcheck"
        assert healthcheck.get("test"), f"{name}'s healthcheck has no test"
        assert not healthcheck.get("disable", False), f"{name}'s healthcheck is disabled"
        for knob in ("interval", "timeout", "retries"):
            assert knob in healthcheck, f"{name}'s healthcheck lacks {knob}"


def test_long_running_services_restart_unless_stopped_and_migrate_runs_once(services):
    # Given the parsed services
    # When we read their restart policies
    # Then long-running services come back after a crash and the migration never loops
    for name in sorted(set(services) - ONE_SHOT_SERVICES):
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"].get("restart") == "no"


def test_processes_that_touch_the_schema_wait_for_migrations_to_succeed(services):
    # Given the api, worker and beat services
    for name in ("api", "worker", "beat"):
        # When we read what they depend on
        depends_on = services[name].get("depends_on")
        # Then each waits for `migrate` to exit successfully (not merely to start)
        assert isinstance(depends_on, dict), f"{name}'s depends_on must use conditions"
        assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully"


def test_migrate_waits_for_a_healthy_database_and_runs_conveyor_migrate(services):
    # Given the migrate service
    migrate = services["migrate"]
    # When we read its command and dependencies
    # Then it runs `conveyor migrate` once PostgreSQL accepts connections
    assert _argv(migrate["command"]) == ["conveyor", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_app_service_points_at_the_compose_database_and_broker(services):
    # Given every service built from the Conveyor image
    for name in sorted(APP_SERVICES):
        env = _environment(services[name])
        # When we read its database and broker URLs
        database = urlsplit(_from_env(env.get("CONVEYOR_DATABASE_URL", "")))
        broker = urlsplit(_from_env(env.get("CONVEYOR_BROKER_URL", "")))
        # Then they name the postgres and redis services, not localhost
        assert database.scheme.startswith("postgresql"), name
        assert database.hostname == "postgres", name
        assert broker.scheme == "redis", name
        assert broker.hostname == "redis", name


def test_flower_never_starts_without_credentials(services):
    # Given the flower service's environment
    env = _environment(services["flower"])
    # When we read how its credentials are supplied
    # Then both use `${VAR:?message}`, so compose refuses to start without them
    for key in ("CONVEYOR_FLOWER_USER", "CONVEYOR_FLOWER_PASSWORD"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", env.get(key, "")), key


def test_published_ports_bind_to_loopback_only(services):
    # Given every service that publishes ports
    for name, service in sorted(services.items()):
        for port in service.get("ports", []):
            # When we read the host side of the mapping
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:
                host_ip = str(port).split(":", 1)[0] if str(port).count(":") == 2 else ""
            # Then it listens on 127.0.0.1, never on every interface
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"


def test_app_services_run_a_known_conveyor_subcommand_or_the_sandbox(services):
    # Given every service built from the Conveyor image
    for name in sorted(APP_SERVICES):
        service = services[name]
        assert "build" in service, f"{name} is not built from the Conveyor image"
        # When we split its command into argv
        argv = _argv(service["command"])
        # Then it starts a Conveyor process the CLI knows, or the bundled sandbox
        is_conveyor = len(argv) >= 2 and argv[0] == "conveyor" and argv[1] in CONVEYOR_SUBCOMMANDS
        assert is_conveyor or argv[:3] == SANDBOX_COMMAND, f"{name} runs {argv!r}"


def test_the_subcommands_compose_uses_exist_in_the_conveyor_cli():
    # Given the `conveyor` console script's Typer app
    from workers.cli import app

    # When we list its top-level commands
    names = {
        info.name or info.callback.__name__.replace("_", "-")
        for info in app.registered_commands
        if info.callback is not None
    }
    # Then every subcommand the compose file relies on is there
    assert names >= CONVEYOR_SUBCOMMANDS


def test_dockerfile_installs_the_project_and_runs_as_a_non_root_user(dockerfile_instructions):
    # Given the Dockerfile's instructions
    keywords = [keyword for keyword, _ in dockerfile_instructions]
    runs = [args for keyword, args in dockerfile_instructions if keyword == "RUN"]
    users = [args for keyword, args in dockerfile_instructions if keyword == "USER"]
    # When we read the base image, the install step and the final user
    # Then the project is pip-installed and the image ends up unprivileged
    assert dockerfile_instructions[0] == ("FROM", "python:3.11-slim")
    assert any(re.search(r"\bpip install\b.*\s\.(\s|$)", run) for run in runs)
    assert users, "the image runs as root"
    assert users[-1].split(":", 1)[0] not in {"root", "0"}
    installs = [i for i, (_, args) in enumerate(dockerfile_instructions) if "pip install" in args]
    last_install = max(installs)
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert last_user > last_install, "USER must come after the install step"
    assert ("CMD", '["conveyor", "api"]') in dockerfile_instructions


def test_every_app_service_and_the_image_run_in_production(services, dockerfile_instructions):
    # Given the compose services built from the Conveyor image, and the Dockerfile's ENV lines
    envs = [args for keyword, args in dockerfile_instructions if keyword == "ENV"]
    for name in sorted(APP_SERVICES):
        # When their CONVEYOR_ENV is read, Then it is production
        assert _environment(services[name]).get("CONVEYOR_ENV") == "production", name
    assert any(re.search(r"\bCONVEYOR_ENV=production\b", args) for args in envs)


def test_every_secret_comes_from_the_environment_with_no_default(services):
    from config.production import CHECKED_SECRETS, REQUIRED_SECRETS

    # Given the services that start a process production checks
    for name in sorted(CHECKED_PROCESS_SERVICES):
        env = _environment(services[name])
        for field in (*CHECKED_SECRETS, *REQUIRED_SECRETS):
            variable = f"CONVEYOR_{field.upper()}"
            # When the secret's value is read, Then it is `${VARIABLE:?message}`: required
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env.get(variable, "")), (
                name,
                variable,
            )
    # And no secret anywhere falls back to a default value (`${VAR:-default}`)
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert re.findall(r"\$\{[A-Z_]+:-", text) == []
    assert "${POSTGRES_PASSWORD:?" in _environment(services["postgres"])["POSTGRES_PASSWORD"]


def test_no_placeholder_secret_is_written_in_the_compose_file(services):
    from config.settings import Settings

    # Given every default secret value the settings carry
    placeholders = {
        info.default.get_secret_value()
        for info in Settings.model_fields.values()
        if hasattr(info.default, "get_secret_value") and info.default.get_secret_value()
    }
    assert "whsec_sandbox" in placeholders
    # When every service's environment is read, Then none of them appears
    for name, service in sorted(services.items()):
        for key, value in _environment(service).items():
            assert value not in placeholders, f"{name} sets {key} to a placeholder"


def test_the_compose_environment_passes_the_production_check(services, monkeypatch):
    from config.production import production_offences
    from config.settings import Settings

    # Given exactly the API container's environment, with a deployer's value for every
    # required variable
    for name in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    for key, value in _environment(services["api"]).items():
        monkeypatch.setenv(key, _from_env(value))
    # When the settings it makes are checked as production, Then nothing is refused
    settings = Settings(_env_file=None)
    assert settings.env == "production"
    assert production_offences(settings) == []
