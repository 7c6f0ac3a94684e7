"""Checks around start-up: a taken port is named with its holder, a stall with its cause."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support.procs import Proc, free_port, http_ok, wait_until
from tests.workers.cli_support import UNREACHABLE_REDIS
from workers.ports import holder_of, port_is_free
from workers.preflight import (
    Listener,
    StartupProblem,
    check_own_listeners,
    check_ports,
    explain_not_ready,
)


@pytest.fixture
def foreign_listener(tmp_path: Path) -> Iterator[tuple[int, Proc]]:
    """Another program (Python's http.server) listening on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = Proc(f"foreign-{port}", argv, {}, tmp_path)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/"), f"http.server on port {port}")
        yield port, proc
    finally:
        proc.stop()


def test_a_port_nobody_listens_on_is_free_and_passes_the_check() -> None:
    # Given a port nobody listens on
    port = free_port()
    # When it is checked, Then it is free and the check passes
    assert port_is_free("127.0.0.1", port)
    check_ports([Listener("API", "127.0.0.1", port, "CONVEYOR_API_PORT")])


def test_a_taken_port_is_named_with_the_process_holding_it(
    foreign_listener: tuple[int, Proc],
) -> None:
    # Given another program listening on the API's port
    port, proc = foreign_listener
    # When the ports are checked before start-up
    with pytest.raises(StartupProblem) as problem:
        check_ports([Listener("API", "127.0.0.1", port, "CONVEYOR_API_PORT")])
    # Then one line names the port, the holder's pid and command, and the setting to change
    message = str(problem.value)
    assert "\n" not in message
    assert f"port {port} (API" in message
    assert f"pid {proc.pid}" in message and "http.server" in message
    assert "CONVEYOR_API_PORT" in message
    assert holder_of(port).pid == proc.pid


def test_a_port_taken_on_every_interface_counts_for_loopback_too(tmp_path: Path) -> None:
    # Given a program listening on 0.0.0.0
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"]
    proc = Proc(f"wildcard-{port}", argv, {}, tmp_path)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/"), f"http.server on port {port}")
        # When 127.0.0.1 on that port is checked, Then it is taken
        assert not port_is_free("127.0.0.1", port)
    finally:
        proc.stop()


def test_a_port_that_answered_but_belongs_to_another_process_is_refused(
    foreign_listener: tuple[int, Proc],
) -> None:
    # Given a port held by a foreign process, and the pid of the child we started for it
    port, proc = foreign_listener
    listener = Listener("API", "127.0.0.1", port, "CONVEYOR_API_PORT")
    # When the listener is checked against our child's pid, Then it is refused
    with pytest.raises(StartupProblem, match=f"held by pid {proc.pid}"):
        check_own_listeners([(listener, proc.pid + 100_000)])
    # And against the holder's own pid it passes
    check_own_listeners([(listener, proc.pid)])


def test_an_address_this_machine_lacks_is_named_with_the_setting_to_change() -> None:
    # Given a listener on an address no interface of this machine has (TEST-NET-1)
    listener = Listener("Flower", "192.0.2.1", free_port(), "CONVEYOR_FLOWER_PORT")
    # When the ports are checked, Then the address and the host setting are named
    with pytest.raises(StartupProblem, match=r"cannot listen on 192\.0\.2\.1:\d+ for the Flower"):
        check_ports([listener])


def test_a_stalled_start_is_explained_by_the_child_that_exited(sqlite_url: str) -> None:
    # Given a stack whose API child exited while `conveyor up` waited for it
    settings = Settings(_env_file=None, database_url=sqlite_url)
    # When the stall is explained, Then the child and its exit code are named
    message = explain_not_ready(settings, [("api", 1)], "API not ready after 30s")
    assert message == "api exited with code 1 during start-up (its output is above)"


def test_a_stalled_start_after_redis_went_away_names_the_broker(sqlite_url: str) -> None:
    # Given every child alive but the broker gone since the start-up checks
    settings = Settings(_env_file=None, database_url=sqlite_url, broker_url=UNREACHABLE_REDIS)
    # When the stall is explained, Then the broker and the fix are named, not a timeout
    message = explain_not_ready(settings, [], "API not ready after 30s")
    assert message.startswith(f"cannot reach the broker at {UNREACHABLE_REDIS}")
    assert "start Redis" in message


def test_a_stalled_start_with_everything_reachable_keeps_the_wait_s_own_message(
    sqlite_url: str,
) -> None:
    # Given a reachable broker and a migrated database, When a stall is explained
    settings = Settings(_env_file=None, database_url=sqlite_url)
    # Then the readiness wait's own message stands
    assert explain_not_ready(settings, [], "API not ready after 30s") == "API not ready after 30s"
