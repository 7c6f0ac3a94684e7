"""The one HTTP client against real local servers: transport failures, bounded retries, excerpts."""

from __future__ import annotations

import time

import pytest
import requests

from integrations.errors import NotSent, TransientError, UnknownOutcome
from integrations.exchanges import recording
from integrations.http import CONNECT_TRIES, HttpClient, path_segment
from tests.integrations.raw_server import raw_server, response
from tests.support.procs import free_port

KEY = {"Authorization": "Bearer sk_sandbox_local"}


def test_connection_refused_is_transient_after_a_bounded_number_of_tries() -> None:
    # Given a port nobody listens on
    client = HttpClient(connect_timeout=0.5, read_timeout=1)
    url = f"http://127.0.0.1:{free_port()}/v1/rates"
    # When a call is made
    with pytest.raises(TransientError) as caught:
        client.send("GET", url)
    # Then it failed as transient (nothing was sent), after exactly CONNECT_TRIES tries
    assert caught.value.code == "connect_error"
    assert client._send.statistics["attempt_number"] == CONNECT_TRIES


def test_read_timeout_after_sending_is_an_unknown_outcome(sandbox: str) -> None:
    # Given a provider that takes 2 s, and a 0.3 s read timeout
    client = HttpClient(connect_timeout=1, read_timeout=0.3)
    # When a call is made, Then the outcome is unknown (the request went out)
    with pytest.raises(UnknownOutcome) as caught:
        client.send("GET", f"{sandbox}/v1/rates", headers={**KEY, "X-Sandbox-Fault": "delay=2000"})
    assert caught.value.code == "timeout"


def test_connection_reset_after_sending_is_an_unknown_outcome(sandbox: str) -> None:
    # Given a provider that drops the connection after reading the request
    client = HttpClient(connect_timeout=1, read_timeout=2)
    # When a call is made, Then the outcome is unknown, and it was not retried inside the call
    with pytest.raises(UnknownOutcome):
        client.send(
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
        client.send(
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
    with recording() as exchanges:
        refused = client.send("POST", f"{sandbox}/v1/charges", headers=KEY, json=body)
    assert refused.status == 400
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
    response = client.send("GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"})
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
            proxied.send("GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"})
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        bypassing = HttpClient(connect_timeout=0.5, read_timeout=5)
        response = bypassing.send("GET", f"{sandbox}/v1/rates", headers=KEY, params={"base": "EUR"})
    # Then the first failed at the dead proxy, known unsent (safe to retry, not an unknown
    # outcome); the second bypassed the proxy and succeeded
    assert through_proxy.value.code == "proxy_error"
    assert isinstance(through_proxy.value, NotSent)
    assert response.status == 200


# --- send(): the raw answer, any status --------------------------------------------------------


def test_send_returns_error_statuses_as_answers_not_exceptions(sandbox: str) -> None:
    # Given a provider answering 503
    client = HttpClient(connect_timeout=1, read_timeout=2)
    # When a call is made with send()
    with recording() as exchanges:
        answer = client.send(
            "GET", f"{sandbox}/v1/rates", headers={**KEY, "X-Sandbox-Fault": "503"}
        )
    # Then the answer comes back as it is, parsed, and the exchange is recorded
    assert answer.status == 503
    assert answer.body["error"]["code"] == "sandbox_fault"
    assert answer.text.startswith("{") and answer.latency_ms >= 0
    assert exchanges[0].status == 503


def test_send_keeps_a_body_that_is_not_json_as_text() -> None:
    # Given a provider answering plain text
    with raw_server(response(502, b"Bad gateway", "Content-Type: text/plain")) as server:
        # When a call is made
        answer = HttpClient(1, 2).send("GET", server.url)
    # Then body is None and text holds what came
    assert (answer.status, answer.body, answer.text) == (502, None, "Bad gateway")


def test_an_empty_form_still_sends_the_form_content_type() -> None:
    # Given a provider that records what it receives
    with raw_server(response(200, b"{}")) as server:
        # When a body-less form POST is sent (Stripe's POST .../cancel)
        HttpClient(1, 2).send("POST", f"{server.url}/v1/payment_intents/pi_1/cancel", form={})
        [received] = server.received
    # Then it carried Content-Type: application/x-www-form-urlencoded and an empty body
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    assert received.body == b""


def test_form_values_that_are_lists_are_sent_once_per_item() -> None:
    # Given a provider that records what it receives
    with raw_server(response(200, b"{}")) as server:
        # When a form with a list is sent
        HttpClient(1, 2).send("POST", server.url, form={"expand[]": ["a", "b"], "amount": "5"})
        [received] = server.received
    # Then the list is repeated (doseq), urlencoded
    assert received.body == b"expand%5B%5D=a&expand%5B%5D=b&amount=5"


def test_path_segment_keeps_a_reference_inside_its_own_segment() -> None:
    # Given references that try to change the URL's shape
    hostile = "pi_1/cancel?x="
    climbing = "x/../../refunds?amount=1"
    # When they are escaped and sent as one path segment
    with raw_server(response(404, b"{}")) as server:
        HttpClient(1, 2).send("POST", f"{server.url}/v1/payment_intents/{path_segment(climbing)}")
        [received] = server.received
    # Then "/", "?" and "=" are percent-encoded and the request line has one segment for it
    assert path_segment(hostile) == "pi_1%2Fcancel%3Fx%3D"
    assert path_segment("pi_3NabcDEF") == "pi_3NabcDEF"
    assert received.line == "POST /v1/payment_intents/x%2F..%2F..%2Frefunds%3Famount%3D1 HTTP/1.1"


def test_a_slow_drip_body_cannot_outlive_the_deadline(sandbox: str) -> None:
    # Given a provider that sends its 200 body one byte every 2 s, a 3 s read timeout, and a
    # deadline 5 s away
    client = HttpClient(connect_timeout=1, read_timeout=3)
    began = time.monotonic()
    deadline = began + 5
    # When a call is made
    with pytest.raises(UnknownOutcome) as caught:
        client.send(
            "GET",
            f"{sandbox}/v1/rates",
            headers={**KEY, "X-Sandbox-Fault": "drip=2000"},
            deadline=deadline,
        )
    ended = time.monotonic()
    # Then it ends as an unknown-outcome timeout within the deadline plus 1 s (and not before
    # the deadline: the drip kept every single read under the read timeout)
    assert caught.value.code == "timeout"
    print(f"drip call ended {ended - deadline:+.3f} s from its deadline")
    assert deadline - 0.5 <= ended <= deadline + 1
    # And the client goes on working on a fresh connection
    assert client.send("GET", f"{sandbox}/v1/rates", headers=KEY).status == 200


def test_a_slow_answer_is_cut_at_the_deadline_not_the_read_timeout(sandbox: str) -> None:
    # Given a provider that thinks 4 s, a read timeout of 10 s, and a deadline 1 s away
    client = HttpClient(connect_timeout=1, read_timeout=10)
    began = time.monotonic()
    # When a call is made
    with pytest.raises(UnknownOutcome) as caught:
        client.send(
            "GET",
            f"{sandbox}/v1/rates",
            headers={**KEY, "X-Sandbox-Fault": "delay=4000"},
            deadline=began + 1,
        )
    # Then it ends at the deadline as a timeout
    assert caught.value.code == "timeout"
    assert time.monotonic() - began < 1.5


def test_a_drip_of_the_status_line_and_headers_is_cut_at_the_deadline_too() -> None:
    # Given a provider that sends even its status line one byte every 0.3 s, a 3 s read
    # timeout, and a deadline 1.5 s away
    with raw_server(response(200, b"{}"), every_s=0.3) as server:
        client = HttpClient(connect_timeout=1, read_timeout=3)
        began = time.monotonic()
        # When a call is made
        with pytest.raises(UnknownOutcome) as caught:
            client.send("POST", f"{server.url}/v1/charges", json={}, deadline=began + 1.5)
        ended = time.monotonic()
    # Then it ends as a timeout at the deadline, not after the whole answer (~12 s)
    assert caught.value.code == "timeout"
    assert began + 1.4 <= ended <= began + 2.5
