"""The one HTTP client against real local servers: transport failures, bounded retries, excerpts."""

from __future__ import annotations

import time

import pytest
import requests

from integrations.errors import PermanentError, TransientError, UnknownOutcome
from integrations.exchanges import recording
from integrations.http import CONNECT_TRIES, HttpClient
from tests.support.procs import free_port

KEY = {"Authorization": "Bearer sk_sandbox_local"}


def test_connection_refused_is_transient_after_a_bounded_number_of_tries() -> None:
    # Given a port nobody listens on
    client = HttpClient(connect_timeout=0.5, read_timeout=1)
    url = f"http://127.0.0.1:{free_port()}/v1/rates"
    # When a call is made
    with pytest.raises(TransientError) as caught:
        client.request("GET", url)
    # Then it failed as transient (nothing was sent), after exactly CONNECT_TRIES tries
    assert caught.value.code == "connect_error"
    assert client._send.statistics["attempt_number"] == CONNECT_TRIES


def test_read_timeout_after_sending_is_an_unknown_outcome(sandbox: str) -> None:
    # Given a provider that takes 2 s, and a 0.3 s read timeout
    client = HttpClient(connect_timeout=1, read_timeout=0.3)
    # When a call is made, Then the outcome is unknown (the request went out)
    with pytest.raises(UnknownOutcome) as caught:
        client.request(
            "GET", f"{sandbox}/v1/rates", headers={**KEY, "X-Sandbox-Fault": "delay=2000"}
        )
    assert caught.value.code == "timeout"


def test_connection_reset_after_sending_is_an_unknown_outcome(sandbox: str) -> None:
    # Given a provider that drops the connection after reading the request
    client = HttpClient(connect_timeout=1, read_timeout=2)
    # When a call is made, Then the outcome is unknown, and it was not retried inside the call
    with pytest.raises(UnknownOutcome):
        client.request(
            "GET", f"{sandbox}/v1/rates", headers={**KEY, "X-Sandbox-Fault": "reset-before"}
        )
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json()
    assert stats["by_path"]["/v1/rates"] == 1


def test_deadline_caps_the_read_timeout(sandbox: str) -> None:
    # Given a 10 s read timeout but an attempt deadline 0.3 s away
    client = HttpClient(connect_timeout=1, read_timeout=10)
    began = time.monotonic()
    # When the provider is slow, Then the call gives up at the deadline
    with pytest.raises(UnknownOutcome):
        client.request(
            "GET",
            f"{sandbox}/v1/rates",
            headers={**KEY, "X-Sandbox-Fault": "delay=3000"},
            deadline=began + 0.3,
        )
    assert time.monotonic() - began < 1.5


def test_recorded_exchanges_never_hold_secrets_or_card_numbers(sandbox: str) -> None:
    # Given a request carrying a secret header and a card number in its body
    client = HttpClient(connect_timeout=1, read_timeout=2)
    body = {"amount": 100, "currency": "eur", "payment_method": "4242424242424242", "cvc": "123"}
    # When it is sent while recording (the PSP refuses it: no idempotency key)
    with recording() as exchanges, pytest.raises(PermanentError):
        client.request("POST", f"{sandbox}/v1/charges", headers=KEY, json=body)
    # Then the stored excerpts keep the shape but not the secrets
    [exchange] = exchanges
    text = exchange.request + exchange.response
    assert "4242424242424242" not in text and "sk_sandbox_local" not in text
    assert '"cvc": "123"' not in text
    assert "****4242" in exchange.request and exchange.status == 400


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_proxy_variables_the_environment_is_read_once_not_per_call(
    no_proxy_env: pytest.MonkeyPatch, sandbox: str
) -> None:
    # Given no proxy variables but a CA bundle variable
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    # When a client is built and makes a call
    client = HttpClient(connect_timeout=1, read_timeout=5)
    response = client.request("GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"})
    # Then the call succeeds, the session no longer scans the environment per call, and the
    # CA bundle is still the one the environment names
    assert response.status == 200
    assert client.session.trust_env is False
    assert client.session.verify == "/etc/ssl/certs/ca-certificates.crt"


def test_proxy_variables_are_still_honoured_per_url(
    no_proxy_env: pytest.MonkeyPatch, sandbox: str
) -> None:
    # Given an HTTP proxy that does not answer (set only while the clients are built and used)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        # When one client calls the sandbox through it, and another has the sandbox in NO_PROXY
        proxied = HttpClient(connect_timeout=0.5, read_timeout=1)
        with pytest.raises(TransientError) as through_proxy:
            proxied.request("GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"})
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        bypassing = HttpClient(connect_timeout=0.5, read_timeout=5)
        response = bypassing.request(
            "GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"}
        )
    # Then the first failed at the dead proxy, known unsent (safe to retry, not an unknown
    # outcome); the second bypassed the proxy and succeeded
    assert through_proxy.value.code == "connect_error"
    assert response.status == 200
