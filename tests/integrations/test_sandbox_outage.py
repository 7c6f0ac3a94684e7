"""The sandbox's outage window: for a while every provider request fails, then it recovers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.integrations.test_sandbox_server import (
    TIMEOUT_S,
    Sandbox,
    charge_body,
    error_of,
    new_key,
    start_sandbox,
    stop_sandbox,
)

SHORT_OUTAGE_S = 0.6
# Past the end of an outage, so a request surely arrives after it.
MARGIN_S = 0.05


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox") / "stderr.log")
    yield sandbox
    stop_sandbox(sandbox.proc)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    """The module's sandbox, wiped clean (outage included) for this test."""
    sandbox_process.admin("/_sandbox/reset")
    return sandbox_process


def post_faults(sandbox: Sandbox, body: dict[str, Any]) -> requests.Response:
    return requests.post(sandbox.url + "/_sandbox/faults", json=body, timeout=TIMEOUT_S)


def wait_out_the_outage(sandbox: Sandbox) -> None:
    time.sleep(sandbox.stats()["outage_remaining_s"] + MARGIN_S)


def test_an_outage_fails_both_paths_unperformed_then_recovers_by_itself(sandbox: Sandbox) -> None:
    # Given: a 0.6 s outage and, behind it, a scripted 429
    started = sandbox.admin(
        "/_sandbox/faults",
        {"script": [{"status": 429}], "outage": {"status": 503, "seconds": SHORT_OUTAGE_S}},
    )
    key = new_key()

    # When: both provider paths are called during the outage, one with a fault header of its own
    rates = sandbox.get("/v1/rates", X_Sandbox_Fault="500")
    charge = sandbox.charge(key, charge_body())
    during = sandbox.stats()

    # Then: 503 sandbox_fault for both, no Retry-After, counted, no effect, no fault used up
    assert 0 < started["outage_remaining_s"] <= SHORT_OUTAGE_S
    for response in (rates, charge):
        assert response.status_code == 503
        assert error_of(response)["type"] == "api_error"
        assert error_of(response)["code"] == "sandbox_fault"
        assert "Retry-After" not in response.headers
    assert during["requests"] == 2
    assert during["by_path"] == {"/v1/rates": 1, "/v1/charges": 1}
    assert during["keys_seen"] == {key: 1}
    assert during["effects"] == {}
    assert during["script_remaining"] == 1
    assert 0 < during["outage_remaining_s"] <= SHORT_OUTAGE_S

    # When: the outage has run its course
    wait_out_the_outage(sandbox)
    scripted = sandbox.get("/v1/rates")
    retried = sandbox.charge(key, charge_body())

    # Then: the script's fault comes next, and the charge is performed for the first time
    assert scripted.status_code == 429
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    after = sandbox.stats()
    assert after["effects"] == {key: 1}
    assert (after["outage_remaining_s"], after["script_remaining"]) == (0, 0)


def test_an_outage_with_retry_after_sends_it_with_its_own_status(sandbox: Sandbox) -> None:
    # Given
    sandbox.admin("/_sandbox/faults", {"outage": {"status": 502, "seconds": 5, "retry_after": 2}})

    # When
    response = sandbox.get("/v1/rates")

    # Then
    assert response.status_code == 502
    assert response.headers["Retry-After"] == "2"
    assert error_of(response)["code"] == "sandbox_fault"


def test_reset_ends_an_outage_at_once(sandbox: Sandbox) -> None:
    # Given: a long outage, in force
    sandbox.admin("/_sandbox/faults", {"outage": {"seconds": 60}})
    assert sandbox.get("/v1/rates").status_code == 503

    # When
    sandbox.admin("/_sandbox/reset")

    # Then
    assert sandbox.get("/v1/rates").status_code == 200
    assert sandbox.stats()["outage_remaining_s"] == 0


def test_a_faults_post_without_outage_keeps_it_and_a_null_outage_ends_it(sandbox: Sandbox) -> None:
    # Given: a long outage
    sandbox.admin("/_sandbox/faults", {"outage": {"seconds": 60}})

    # When: a new script is posted without an outage
    kept = sandbox.admin("/_sandbox/faults", {"script": []})

    # Then: the outage still runs
    assert kept["outage_remaining_s"] > 50
    assert sandbox.get("/v1/rates").status_code == 503

    # When: an explicit null
    ended = sandbox.admin("/_sandbox/faults", {"outage": None})

    # Then
    assert ended["outage_remaining_s"] == 0
    assert sandbox.get("/v1/rates").status_code == 200


@pytest.mark.parametrize(
    "outage",
    [
        {"seconds": 0},
        {"seconds": -1},
        {"seconds": 600.5},
        {"seconds": True},
        {"seconds": "5"},
        {"status": 503},
        {"status": 429, "seconds": 1},
        {"status": 600, "seconds": 1},
        {"seconds": 1, "retry_after": -1},
        {"seconds": 1, "colour": "red"},
        "5s",
    ],
)
def test_an_invalid_outage_is_refused_and_starts_nothing(sandbox: Sandbox, outage: object) -> None:
    # When
    response = post_faults(sandbox, {"outage": outage})

    # Then: 400 invalid_fault naming the outage, and the provider answers as usual
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_fault"
    assert error_of(response)["param"] == "outage"
    assert sandbox.stats()["outage_remaining_s"] == 0
    assert sandbox.get("/v1/rates").status_code == 200
