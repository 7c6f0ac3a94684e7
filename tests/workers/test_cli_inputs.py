"""`conveyor keys …` and `conveyor jobs …` refuse what the API refuses: exit 2, one line naming
the option, nothing written, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from store.db import get_database
from store.models import ApiKey
from tests.support.procs import ROOT

# What a shell hands Python for the bytes ED A0 80 (an encoded lone surrogate): surrogateescape.
LONE_SURROGATE_ARG = b"\xed\xa0\x80".decode("utf-8", "surrogateescape")


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `conveyor …` on the test's database and broker prefix."""
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": settings.database_url,
        "CONVEYOR_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "CONVEYOR_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        check=False,
    )


def _key_count(settings: Settings) -> int:
    with get_database(settings).session() as session:
        return session.scalar(select(func.count()).select_from(ApiKey)) or 0


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--tenant", " demo "), "--tenant"),
        (("--tenant", "x\x01y"), "--tenant"),
        (("--tenant", "4242424242424242"), "--tenant"),
        (("--tenant", LONE_SURROGATE_ARG), "--tenant"),
        (("--tenant", "x" * 101), "--tenant"),
        (("--tenant", "acme", "--name", "label\x7f"), "--name"),
        (("--tenant", "acme", "--expires-in-days", "99999"), "--expires-in-days"),
        (("--tenant", "acme", "--expires-in-days", "nan"), "--expires-in-days"),
        (("--tenant", "acme", "--expires-in-days", "inf"), "--expires-in-days"),
        (("--tenant", "acme", "--expires-in-days", "1e9"), "--expires-in-days"),
        (("--tenant", "acme", "--expires-in-days", "0"), "--expires-in-days"),
        (("--tenant", "acme", "--expires-in-days", "-1"), "--expires-in-days"),
    ],
)
def test_keys_create_refuses_what_the_api_refuses_naming_the_option(
    settings: Settings, args: tuple[str, ...], option: str
) -> None:
    # Given a database with no keys
    before = _key_count(settings)
    # When a key is asked for with a value the API's key schema refuses
    result = run(settings, "keys", "create", *args)
    # Then the CLI exits 2 with one line naming the option, and issues nothing
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"conveyor: {option}:"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _key_count(settings) == before


def test_keys_create_accepts_a_plain_tenant_and_a_lifetime_at_the_limit(
    settings: Settings,
) -> None:
    # Given the API's limits (3650 days)
    # When a key is asked for within them
    result = run(settings, "keys", "create", "--tenant", "acme", "--expires-in-days", "3650")
    # Then it is issued
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cvk_")


@pytest.mark.parametrize(
    ("args", "option", "named"),
    [
        (("jobs", "list", "--state", "bogus"), "--state", "needs_review"),
        (("jobs", "list", "--error-class", "bogus"), "--error-class", "transient"),
        (("jobs", "list", "--provider", "bogus"), "--provider", "sandbox"),
        (("jobs", "list", "--type", "bogus"), "--type", "payments."),
        (("jobs", "list", "--tenant", LONE_SURROGATE_ARG), "--tenant", "surrogate"),
        (("jobs", "replay", "--provider", "bogus"), "--provider", "sandbox"),
        (("keys", "list", "--tenant", LONE_SURROGATE_ARG), "--tenant", "surrogate"),
    ],
)
def test_a_filter_naming_nothing_that_exists_exits_2_naming_the_option_and_its_values(
    settings: Settings, args: tuple[str, ...], option: str, named: str
) -> None:
    # When on-call filters by a value no job can have
    result = run(settings, *args)
    # Then the CLI says which option and what it accepts, instead of printing nothing
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"conveyor: {option}:"), result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr


def test_a_valid_state_filter_still_lists(settings: Settings) -> None:
    # When on-call filters by a real state on an empty database
    result = run(settings, "jobs", "list", "--state", "dead", "--error-class", "transient")
    # Then it exits 0 with nothing to list
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
