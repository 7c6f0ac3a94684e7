"""Port checks before start-up: a port another process listens on is named with its holder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import Proc, free_port, http_ok, wait_until
from workers.ports import holder_of, port_is_free
from workers.preflight import Listener, StartupProblem, check_own_listeners, check_ports


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
