"""The sandbox's slow-drip and odd-body faults, through the real sandbox server."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from integrations.sandbox.faults import ODD_BODY, Fault, fault_from_header, fault_from_json

KEY = {"Authorization": "Bearer sk_sandbox_local"}


def test_fault_specs_read_drip_and_odd_body() -> None:
    # Given the header and JSON forms, When they are parsed, Then they mean the same fault
    assert fault_from_header("drip=2000") == Fault(drip_ms=2000)
    assert fault_from_header("odd-body") == Fault(odd_body=True)
    assert fault_from_json({"drip_ms": 50, "odd_body": True}) == Fault(drip_ms=50, odd_body=True)
    for bad in ({"odd_body": 1}, {"drip_ms": -1}, {"drip_ms": 10, "reset": "before"}):
        with pytest.raises(ValueError):
            fault_from_json(bad)


def test_odd_body_answers_the_2xx_with_a_shape_no_adapter_reads_after_doing_the_work(
    sandbox: str,
) -> None:
    # Given a scripted odd-body fault
    requests.post(
        f"{sandbox}/_sandbox/faults", json={"script": [{"odd_body": True}]}, timeout=5
    ).raise_for_status()
    key = f"odd-{uuid.uuid4()}"
    # When a charge is made
    answer = requests.post(
        f"{sandbox}/v1/charges",
        json={"amount": 100, "currency": "eur", "payment_method": "pm_card_visa"},
        headers={**KEY, "Idempotency-Key": key},
        timeout=5,
    )
    # Then the answer is a 2xx with the odd body, and the charge happened all the same
    assert answer.status_code // 100 == 2 and answer.json() == ODD_BODY
    stats = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json()
    assert stats["effects"].get(key) == 1


def test_drip_sends_headers_at_once_and_the_body_a_byte_at_a_time(sandbox: str) -> None:
    # Given a request naming a 300 ms drip, sent on a raw socket
    address = urlsplit(sandbox)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(
            b"GET /v1/rates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk_sandbox_local\r\n"
            b"X-Sandbox-Fault: drip=300\r\n\r\n"
        )
        # When the first second of the answer is read
        began = time.monotonic()
        received = b""
        while time.monotonic() - began < 1.0:
            received += sock.recv(65536)
    # Then the headers came whole, the body only a few bytes of it
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    assert 1 <= len(body) <= 5 < length
