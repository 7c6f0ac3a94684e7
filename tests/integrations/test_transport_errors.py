"""The transport table, case by case, against real sockets: sent or not, which class, which code."""

from __future__ import annotations

import contextlib
import gzip
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from integrations.errors import (
    DeadlinePassed,
    IntegrationError,
    NotSent,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from integrations.exchanges import recording
from integrations.http import HttpClient
from integrations.transport_errors import TRANSPORT_RULES
from tests.integrations.raw_server import raw_server, response
from tests.support.procs import free_port

KEY = {"Authorization": "Bearer sk_sandbox_local"}


def sandbox_requests(sandbox: str, path: str = "/v1/rates") -> int:
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json()
    return int(stats["by_path"].get(path, 0))


def fail(client: HttpClient, method: str, url: str, **kwargs: object) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        client.send(method, url, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: new connections hang until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


def test_every_row_of_the_table_says_unknown_outcome_exactly_when_it_was_sent() -> None:
    # Given the table, When each row is read, Then "sent" rows are unknown outcomes and the
    # others are safe to retry (NotSent) or wrong for good (invalid URL)
    for rule in TRANSPORT_RULES:
        if rule.sent:
            assert rule.error is UnknownOutcome, rule
        else:
            assert rule.error in (NotSent, PermanentError), rule


def test_a_connection_that_never_completes_is_a_connect_timeout_not_sent(
    full_backlog: int,
) -> None:
    # Given a server whose accept queue is full
    client = HttpClient(connect_timeout=0.3, read_timeout=1)
    # When a call is made
    error = fail(client, "POST", f"http://127.0.0.1:{full_backlog}/v1/charges", json={})
    # Then nothing was sent: safe to retry
    assert isinstance(error, NotSent) and error.code == "connect_timeout"


def test_a_refused_connection_is_not_sent() -> None:
    # Given a port nobody listens on
    client = HttpClient(connect_timeout=0.5, read_timeout=1)
    # When a call is made, Then it is NotSent / connect_error
    error = fail(client, "GET", f"http://127.0.0.1:{free_port()}/v1/rates")
    assert isinstance(error, NotSent) and error.code == "connect_error"


def test_a_failed_tls_handshake_is_not_sent(sandbox: str) -> None:
    # Given a server that speaks plain HTTP, called over https (the handshake fails)
    client = HttpClient(connect_timeout=1, read_timeout=1)
    # When a call is made
    error = fail(client, "GET", sandbox.replace("http://", "https://") + "/v1/rates", headers=KEY)
    # Then it is NotSent / ssl_error, and the server never saw a request
    assert isinstance(error, NotSent) and error.code == "ssl_error"
    assert sandbox_requests(sandbox) == 0


def test_a_name_that_does_not_resolve_is_not_sent() -> None:
    # Given a host in the reserved .invalid domain (RFC 6761), When a call is made
    error = fail(HttpClient(1, 1), "GET", "http://conveyor-test.invalid/v1/rates")
    # Then it is NotSent / dns_error
    assert isinstance(error, NotSent) and error.code == "dns_error"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http://"])
def test_an_invalid_url_is_permanent(url: str) -> None:
    # Given a URL requests cannot send, When a call is made, Then it fails for good
    error = fail(HttpClient(1, 1), "GET", url)
    assert isinstance(error, PermanentError) and error.code == "invalid_url"


def test_a_read_timeout_after_sending_is_an_unknown_outcome(sandbox: str) -> None:
    # Given a provider that takes 2 s, and a 0.3 s read timeout
    client = HttpClient(connect_timeout=1, read_timeout=0.3)
    headers = {**KEY, "X-Sandbox-Fault": "delay=2000"}
    # When a call is made, Then the outcome is unknown: the request went out
    error = fail(client, "GET", f"{sandbox}/v1/rates", headers=headers)
    assert isinstance(error, UnknownOutcome) and error.code == "timeout"
    assert sandbox_requests(sandbox) == 1


def test_a_reset_after_sending_is_an_unknown_outcome_and_is_not_retried(sandbox: str) -> None:
    # Given a provider that drops the connection after reading the request
    client = HttpClient(connect_timeout=1, read_timeout=2)
    headers = {**KEY, "X-Sandbox-Fault": "reset-before"}
    # When a call is made, Then it is an unknown outcome, sent exactly once
    error = fail(client, "GET", f"{sandbox}/v1/rates", headers=headers)
    assert isinstance(error, UnknownOutcome) and error.code == "reset"
    assert sandbox_requests(sandbox) == 1


def test_a_body_cut_short_is_an_unknown_outcome() -> None:
    # Given a provider that promises 100 bytes, sends 10 and closes
    answer = response(200, b'{"id": "pi', "Content-Length: 100")
    with raw_server(answer) as server:
        # When a call is made
        error = fail(HttpClient(1, 2), "POST", f"{server.url}/v1/charges", json={"a": 1})
        # Then it was sent (the server has it) and its outcome is unknown
        assert isinstance(error, UnknownOutcome) and error.code == "body_cut"
        assert len(server.received) == 1


def test_a_broken_chunked_body_is_an_unknown_outcome() -> None:
    # Given a chunked answer whose chunk size is not hexadecimal
    answer = response(200, b"zz\r\nabc\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
    with raw_server(answer) as server:
        # When a call is made, Then its outcome is unknown
        error = fail(HttpClient(1, 2), "POST", f"{server.url}/v1/charges", json={})
        assert isinstance(error, UnknownOutcome) and error.code == "body_cut"


def test_a_body_that_fails_to_decode_is_an_unknown_outcome() -> None:
    # Given an answer that claims gzip but is not
    answer = response(200, b"not gzip at all", "Content-Encoding: gzip", "Content-Length: 15")
    with raw_server(answer) as server:
        # When a call is made, Then its outcome is unknown
        error = fail(HttpClient(1, 2), "POST", f"{server.url}/v1/charges", json={})
        assert isinstance(error, UnknownOutcome) and error.code == "decode_error"


def test_a_gzip_body_is_decoded() -> None:
    # Given a well-formed gzip answer (the negative control of the test above)
    body = gzip.compress(b'{"ok": true}')
    answer = response(200, body, "Content-Encoding: gzip", "Content-Type: application/json")
    with raw_server(answer) as server:
        # When a call is made, Then the JSON comes back parsed
        assert HttpClient(1, 2).send("GET", server.url).body == {"ok": True}


def test_a_deadline_already_passed_sends_nothing_and_is_not_the_providers_fault(
    sandbox: str,
) -> None:
    # Given an attempt whose deadline ran out before the call
    client = HttpClient(connect_timeout=1, read_timeout=1)
    # When a call is made
    with recording() as exchanges:
        error = fail(
            client, "GET", f"{sandbox}/v1/rates", headers=KEY, deadline=time.monotonic() - 0.1
        )
    # Then it is DeadlinePassed (transient, not a provider fault), recorded, nothing sent
    assert isinstance(error, DeadlinePassed) and isinstance(error, TransientError)
    assert error.code == "deadline" and error.provider_fault is False
    assert exchanges[0].status is None and "deadline" in exchanges[0].response
    assert sandbox_requests(sandbox) == 0


def test_connect_retries_stop_at_the_deadline() -> None:
    # Given a refused port, 0.3 s of deadline left, and retries that wait up to 0.25 s each
    client = HttpClient(connect_timeout=0.5, read_timeout=1)
    began = time.monotonic()
    # When a call is made
    error = fail(client, "GET", f"http://127.0.0.1:{free_port()}/", deadline=began + 0.3)
    # Then it failed as not sent, and no retry ran past the deadline
    assert isinstance(error, NotSent)
    assert time.monotonic() - began < 0.3 + 0.1
