"""The sandbox provider server, run as a real process and spoken to over HTTP."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from integrations.sandbox.arrivals import max_in_window
from integrations.sandbox.faults import Fault, fault_from_header
from integrations.sandbox.rates import rates_for

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_sandbox_test"
BANNER = "sandbox listening on http://"
START_DEADLINE_S = 10.0
TIMEOUT_S = 5.0


@dataclass
class Sandbox:
    """A running sandbox process and a small client for it."""

    proc: subprocess.Popen[str]
    url: str

    def get(self, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self._headers(auth, kwargs), timeout=TIMEOUT_S)

    def charge(self, key: str | None, body: dict[str, Any], **headers: str) -> requests.Response:
        if key is not None:
            headers["Idempotency-Key"] = key
        return requests.post(
            self.url + "/v1/charges",
            json=body,
            headers=self._headers(True, headers),
            timeout=TIMEOUT_S,
        )

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if body is None and path.endswith("stats"):
            response = requests.get(self.url + path, timeout=TIMEOUT_S)
        else:
            response = requests.post(self.url + path, json=body or {}, timeout=TIMEOUT_S)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        return self.admin("/_sandbox/stats")

    @staticmethod
    def _headers(auth: bool, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {API_KEY}"} if auth else {}
        return headers | {name.replace("_", "-"): value for name, value in extra.items()}


def start_sandbox(stderr_path: Path) -> Sandbox:
    """Start `python -m integrations.sandbox --port 0` and wait for its banner line."""
    env = os.environ | {"CONVEYOR_SANDBOX_API_KEY": API_KEY}
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "integrations.sandbox", "--port", "0"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    # readline() has no timeout of its own: read on a thread and wait on the queue instead.
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_DEADLINE_S).strip()
    except queue.Empty:
        stop_sandbox(proc)
        pytest.fail(
            f"waited {START_DEADLINE_S:.0f} s for the sandbox to print {BANNER!r}HOST:PORT; "
            f"stderr: {stderr_path.read_text()!r}"
        )
    if not line.startswith(BANNER):
        stop_sandbox(proc)
        pytest.fail(
            f"expected {BANNER!r}HOST:PORT, got {line!r}; stderr: {stderr_path.read_text()!r}"
        )
    return Sandbox(proc, "http://" + line.removeprefix(BANNER))


def stop_sandbox(proc: subprocess.Popen[str]) -> int:
    """Terminate the sandbox by its PID; kill it if it ignores SIGTERM."""
    proc.terminate()
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5)
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox") / "stderr.log")
    yield sandbox
    stop_sandbox(sandbox.proc)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Sandbox:
    """The module's sandbox, wiped clean for this test."""
    sandbox_process.admin("/_sandbox/reset")
    return sandbox_process


def new_key() -> str:
    return f"key_{uuid.uuid4().hex}"


def charge_body(**overrides: Any) -> dict[str, Any]:
    return {"amount": 1250, "currency": "eur", "payment_method": "pm_card_visa"} | overrides


def error_of(response: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# --- rates ------------------------------------------------------------------------------


def test_rates_for_derives_cross_rates_from_the_euro_table() -> None:
    # Given / When: rates quoted against EUR and against USD
    eur = rates_for("EUR", ["USD", "GBP"])
    usd = rates_for("usd", ["EUR", "USD"])

    # Then: fixed values, six decimals, base normalised, the base itself at 1
    assert eur == {"base": "EUR", "date": "2026-01-01", "rates": {"USD": 1.085, "GBP": 0.846}}
    assert usd["base"] == "USD"
    assert usd["rates"] == {"EUR": 0.921659, "USD": 1.0}
    assert set(rates_for("EUR", None)["rates"]) >= {"USD", "GBP", "JPY", "CHF", "CAD", "AUD"}
    assert "EUR" not in rates_for("EUR", None)["rates"]


def test_rates_for_refuses_an_unknown_currency() -> None:
    with pytest.raises(ValueError, match="XXX"):
        rates_for("XXX", None)
    with pytest.raises(ValueError, match="ZZZ"):
        rates_for("EUR", ["USD", "ZZZ"])


def test_rates_endpoint_answers_the_same_figures_every_time(sandbox: Sandbox) -> None:
    # When: the same query twice
    first = sandbox.get("/v1/rates?base=EUR&symbols=USD,GBP")
    second = sandbox.get("/v1/rates?base=EUR&symbols=USD,GBP")

    # Then: identical deterministic bodies
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == rates_for("EUR", ["USD", "GBP"])


@pytest.mark.parametrize(
    ("query", "param"), [("base=XXX", "base"), ("base=EUR&symbols=USD,ZZZ", "symbols")]
)
def test_rates_endpoint_rejects_an_unknown_currency_naming_the_param(
    sandbox: Sandbox, query: str, param: str
) -> None:
    response = sandbox.get(f"/v1/rates?{query}")

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    assert error_of(response)["code"] == "unknown_currency"
    assert error_of(response)["param"] == param


def test_provider_endpoints_refuse_a_missing_or_wrong_api_key(sandbox: Sandbox) -> None:
    # When: no key, a wrong key, and a charge without a key
    missing = sandbox.get("/v1/rates", auth=False)
    wrong = sandbox.get("/v1/rates", auth=False, Authorization="Bearer sk_wrong")
    charge = requests.post(
        sandbox.url + "/v1/charges",
        json=charge_body(),
        headers={"Idempotency-Key": new_key()},
        timeout=TIMEOUT_S,
    )

    # Then: 401 authentication_error each time, and no effect
    for response in (missing, wrong, charge):
        assert response.status_code == 401
        assert error_of(response)["type"] == "authentication_error"
    assert sandbox.stats()["effects"] == {}


# --- charges and idempotency ------------------------------------------------------------


def test_a_charge_with_a_new_key_creates_exactly_one_effect(sandbox: Sandbox) -> None:
    # Given
    key = new_key()

    # When
    response = sandbox.charge(key, charge_body(currency="EUR"))

    # Then: a succeeded charge whose id derives from the key, and one effect recorded
    assert response.status_code == 201
    charge = response.json()
    assert charge["id"].startswith("ch_") and len(charge["id"]) == 3 + 24
    assert charge | {"id": None} == {
        "id": None,
        "object": "charge",
        "status": "succeeded",
        "amount": 1250,
        "currency": "eur",
        "payment_method": "pm_card_visa",
        "idempotency_key": key,
    }
    assert "Idempotent-Replayed" not in response.headers
    assert sandbox.stats()["effects"] == {key: 1}


def test_a_retry_with_the_same_key_and_body_replays_the_saved_charge(sandbox: Sandbox) -> None:
    # Given: a charge already made
    key = new_key()
    first = sandbox.charge(key, charge_body())

    # When: the same request again
    again = sandbox.charge(key, charge_body())

    # Then: the same answer, flagged as a replay, and still one effect
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert sandbox.stats()["effects"] == {key: 1}
    assert sandbox.stats()["keys_seen"] == {key: 2}


def test_the_same_key_with_another_body_is_an_idempotency_error(sandbox: Sandbox) -> None:
    # Given
    key = new_key()
    sandbox.charge(key, charge_body(amount=1000))

    # When
    response = sandbox.charge(key, charge_body(amount=2000))

    # Then
    assert response.status_code == 400
    assert error_of(response)["type"] == "idempotency_error"
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert sandbox.stats()["effects"] == {key: 1}


def test_a_concurrent_request_with_a_key_in_flight_gets_409(sandbox: Sandbox) -> None:
    # Given: a first charge the provider takes 600 ms over
    key = new_key()
    results: list[requests.Response] = []
    slow = threading.Thread(
        target=lambda: results.append(
            sandbox.charge(key, charge_body(), X_Sandbox_Latency_Ms="600")
        )
    )
    slow.start()
    deadline = time.monotonic() + TIMEOUT_S
    while sandbox.stats()["keys_seen"].get(key) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the key is claimed just after it is counted; leave that moment a margin

    # When: a retry arrives while it is still in flight
    second = sandbox.charge(key, charge_body())
    slow.join(TIMEOUT_S)

    # Then: 409 in use, and the first still completes once
    assert second.status_code == 409
    assert error_of(second)["code"] == "idempotency_key_in_use"
    assert results[0].status_code == 201
    assert sandbox.stats()["effects"] == {key: 1}


def test_a_charge_without_an_idempotency_key_is_refused(sandbox: Sandbox) -> None:
    response = sandbox.charge(None, charge_body())

    assert response.status_code == 400
    assert error_of(response)["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"currency": "euro"}, "currency"),
        ({"payment_method": "card_123"}, "payment_method"),
        ({"payment_method": None}, "payment_method"),
    ],
)
def test_an_invalid_charge_is_refused_naming_the_param(
    sandbox: Sandbox, overrides: dict[str, Any], param: str
) -> None:
    response = sandbox.charge(new_key(), charge_body(**overrides))

    assert response.status_code == 400
    assert error_of(response)["param"] == param
    assert sandbox.stats()["effects"] == {}


def test_a_declined_card_is_a_402_card_error_and_no_effect(sandbox: Sandbox) -> None:
    # Given
    key = new_key()

    # When: declined, then retried with the same key
    declined = sandbox.charge(key, charge_body(payment_method="pm_card_declined"))
    retried = sandbox.charge(key, charge_body(payment_method="pm_card_declined"))

    # Then: a card error, saved under the key and replayed, never an effect
    assert declined.status_code == 402
    assert error_of(declined) == {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
    }
    assert retried.status_code == 402
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert sandbox.stats()["effects"] == {}


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc"),
        ("pm_card_chargeDeclinedFraudulent", "fraudulent"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error"),
        ("pm_card_chargeDeclinedLostCard", "lost_card"),
        ("pm_card_chargeCustomerFail", "generic_decline"),
        ("pm_card_radarBlock", "fraudulent"),
    ],
)
def test_stripes_declining_test_cards_decline_on_the_one_call_api_too(
    sandbox: Sandbox, payment_method: str, decline_code: str
) -> None:
    # When a charge uses one of Stripe's declining test cards (the README lists Stripe's)
    declined = sandbox.charge(new_key(), charge_body(payment_method=payment_method))
    # Then it is declined with that card's code, and no money moved
    assert declined.status_code == 402
    assert error_of(declined)["decline_code"] == decline_code
    assert sandbox.stats()["effects"] == {}


# --- fault injection --------------------------------------------------------------------


def test_a_fault_script_answers_503_then_429_then_succeeds(sandbox: Sandbox) -> None:
    # Given
    sandbox.admin(
        "/_sandbox/faults", {"script": [{"status": 503}, {"status": 429, "retry_after": 2}]}
    )
    key = new_key()

    # When: three tries with the same key
    responses = [sandbox.charge(key, charge_body()) for _ in range(3)]

    # Then
    assert [r.status_code for r in responses] == [503, 429, 201]
    assert error_of(responses[0]) | {"message": ""} == {
        "type": "api_error",
        "code": "sandbox_fault",
        "message": "",
    }
    assert "Retry-After" not in responses[0].headers
    assert responses[1].headers["Retry-After"] == "2"
    assert sandbox.stats()["effects"] == {key: 1}


def test_a_fault_header_affects_only_its_own_request(sandbox: Sandbox) -> None:
    failed = sandbox.get("/v1/rates", X_Sandbox_Fault="429;retry_after=7")
    fine = sandbox.get("/v1/rates")

    assert failed.status_code == 429
    assert failed.headers["Retry-After"] == "7"
    assert fine.status_code == 200


def test_reset_after_loses_the_answer_but_keeps_the_effect_and_a_retry_replays_it(
    sandbox: Sandbox,
) -> None:
    # Given: the next request will be performed, then its connection dropped
    sandbox.admin("/_sandbox/faults", {"script": [{"reset": "after"}]})
    key = new_key()

    # When
    with pytest.raises(requests.ConnectionError):
        sandbox.charge(key, charge_body())

    # Then: the effect happened although the client saw none
    assert sandbox.stats()["effects"] == {key: 1}

    # When: the client retries with the same key
    retried = sandbox.charge(key, charge_body())

    # Then: the saved charge comes back, and there is still a single effect
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["idempotency_key"] == key
    assert sandbox.stats()["effects"] == {key: 1}


def test_reset_before_drops_the_request_without_an_effect(sandbox: Sandbox) -> None:
    # Given
    key = new_key()

    # When
    with pytest.raises(requests.ConnectionError):
        sandbox.charge(key, charge_body(), X_Sandbox_Fault="reset-before")

    # Then: nothing happened, so a retry performs the charge for the first time
    assert sandbox.stats()["effects"] == {}
    retried = sandbox.charge(key, charge_body())
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert sandbox.stats()["effects"] == {key: 1}


def test_fault_from_header_reads_should_retry_as_a_boolean() -> None:
    assert fault_from_header("503;should_retry=false") == Fault(status=503, should_retry=False)
    assert fault_from_header("400; should_retry=TRUE") == Fault(status=400, should_retry=True)
    for text in (
        "503;should_retry=1",
        "503;should_retry=yes",
        "should_retry=true",
        "429;retry_after=x",
    ):
        with pytest.raises(ValueError):
            fault_from_header(text)


def test_a_fault_with_should_retry_sends_the_stripe_should_retry_header(sandbox: Sandbox) -> None:
    # Given: a scripted 500 that says to retry
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 500, "should_retry": True}]})

    # When: that, then two requests naming their own faults, then a plain one
    scripted = sandbox.get("/v1/rates")
    unavailable = sandbox.charge(new_key(), charge_body(), X_Sandbox_Fault="503;should_retry=false")
    invalid = sandbox.get("/v1/rates", X_Sandbox_Fault="400;should_retry=true")
    plain = sandbox.get("/v1/rates", X_Sandbox_Fault="503")

    # Then: the header carries each hint, and only when one was given
    assert (scripted.status_code, scripted.headers["Stripe-Should-Retry"]) == (500, "true")
    assert (unavailable.status_code, unavailable.headers["Stripe-Should-Retry"]) == (503, "false")
    assert (invalid.status_code, invalid.headers["Stripe-Should-Retry"]) == (400, "true")
    assert "Stripe-Should-Retry" not in plain.headers
    assert sandbox.stats()["effects"] == {}


def test_should_retry_without_a_status_is_refused(sandbox: Sandbox) -> None:
    in_script = requests.post(
        sandbox.url + "/_sandbox/faults",
        json={"script": [{"should_retry": True}]},
        timeout=TIMEOUT_S,
    )
    not_boolean = sandbox.get("/v1/rates", X_Sandbox_Fault="503;should_retry=maybe")

    for response in (in_script, not_boolean):
        assert response.status_code == 400
        assert error_of(response)["code"] == "invalid_fault"


def test_a_malformed_fault_script_is_refused(sandbox: Sandbox) -> None:
    response = requests.post(
        sandbox.url + "/_sandbox/faults", json={"script": [{"status": 200}]}, timeout=TIMEOUT_S
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_fault"


# --- admin, health and errors -----------------------------------------------------------


def test_stats_count_provider_requests_and_reset_clears_everything(sandbox: Sandbox) -> None:
    # Given: two provider calls, a health check and a pending scripted fault
    key = new_key()
    sandbox.get("/v1/rates")
    sandbox.charge(key, charge_body())
    assert sandbox.get("/healthz", auth=False).json() == {"status": "ok"}
    sandbox.admin("/_sandbox/faults", {"script": [{"status": 503}], "latency_ms": 5})

    # When / Then: stats count provider calls only
    stats = sandbox.stats()
    assert stats["requests"] == 2
    assert stats["by_path"] == {"/v1/rates": 1, "/v1/charges": 1}
    assert stats["effects"] == {key: 1}
    assert stats["keys_seen"] == {key: 1}
    assert (stats["script_remaining"], stats["latency_ms"]) == (1, 5)

    # When: reset
    sandbox.admin("/_sandbox/reset")

    # Then: counters, keys, script and latency are back to the start
    stats = sandbox.stats()
    assert stats == {
        "requests": 0,
        "by_path": {},
        "effects": {},
        "keys_seen": {},
        "script_remaining": 0,
        "latency_ms": 0,
        "max_in_any_second": {},
        "outage_remaining_s": 0,
    }
    fresh = sandbox.charge(key, charge_body())
    assert fresh.status_code == 201
    assert "Idempotent-Replayed" not in fresh.headers


def test_max_in_window_counts_the_busiest_half_open_window() -> None:
    # Given: arrivals out of order, with one exactly a window after another
    arrivals = [10.0, 0.0, 0.5, 1.0, 0.99, 10.2]

    # When / Then: [0.0, 1.0) holds three; 1.0 falls outside it
    assert max_in_window(arrivals, 1.0) == 3
    assert max_in_window(arrivals, 0.25) == 2
    assert max_in_window(arrivals, 20.0) == 6
    assert max_in_window([], 1.0) == 0


def test_stats_report_the_most_requests_in_any_window_per_path(sandbox: Sandbox) -> None:
    # Given: a burst of five rates calls and one charge
    for _ in range(5):
        sandbox.get("/v1/rates")
    sandbox.charge(new_key(), charge_body())

    # When / Then
    assert sandbox.stats()["max_in_any_second"] == {"/v1/rates": 5, "/v1/charges": 1}

    # When: two more rates calls, over a second later
    time.sleep(1.1)
    sandbox.get("/v1/rates")
    sandbox.get("/v1/rates")

    # Then: no one-second window holds more than the burst; a five-second window holds all
    assert sandbox.stats()["max_in_any_second"]["/v1/rates"] == 5
    wide = requests.get(sandbox.url + "/_sandbox/stats?window=5", timeout=TIMEOUT_S).json()
    assert wide["max_in_any_second"] == {"/v1/rates": 7, "/v1/charges": 1}


@pytest.mark.parametrize("window", ["0", "-1", "abc", "nan", "inf", "86401"])
def test_stats_refuse_a_window_that_is_not_a_positive_number(sandbox: Sandbox, window: str) -> None:
    response = requests.get(sandbox.url + f"/_sandbox/stats?window={window}", timeout=TIMEOUT_S)

    assert response.status_code == 400
    assert error_of(response)["param"] == "window"


def test_unknown_paths_and_bad_json_get_json_errors(sandbox: Sandbox) -> None:
    missing = sandbox.get("/v2/nothing")
    bad_json = requests.post(
        sandbox.url + "/v1/charges",
        data=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": new_key()},
        timeout=TIMEOUT_S,
    )
    wrong_method = requests.delete(sandbox.url + "/v1/charges", timeout=TIMEOUT_S)

    assert missing.status_code == 404
    assert error_of(missing)["code"] == "resource_missing"
    assert bad_json.status_code == 400
    assert error_of(bad_json)["code"] == "invalid_json"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"


def test_sigterm_stops_the_sandbox_with_exit_status_0(tmp_path: Path) -> None:
    # Given: a sandbox of its own, answering
    sandbox = start_sandbox(tmp_path / "stderr.log")
    assert sandbox.get("/healthz", auth=False).status_code == 200

    # When / Then
    assert stop_sandbox(sandbox.proc) == 0
