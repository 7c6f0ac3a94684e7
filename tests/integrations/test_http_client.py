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
