"""The outbound address check and the pinned request, against a local receiver (no real DNS)."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.outbound import OutboundRefused, OutboundTimeout, check_url, pinned_request
from tests.support.receiver import Reply, receiver

REFUSED = [
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("http://user:pw@example.com/", "userinfo"),
    ("http://8.8.8.8:0/x", "port"),
    ("https://hooks.example:0/in", "port"),
    ("http://2130706433/", "numeric_host"),
    ("http://0177.0.0.1/", "numeric_host"),
    ("http://0x7f000001/", "numeric_host"),
    ("http://0x7f.0.0.1/", "numeric_host"),
    ("http://127.1/", "numeric_host"),
    ("http://127.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link_local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link_local"),
    ("http://[2002:a00:1::]/", "private"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link_local"),
    ("http://[fe80::1]/", "link_local"),
    ("http://[fe80::1%25eth0]/", "zone_id"),
    ("http://100.64.0.1/", "shared"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://255.255.255.255/", "reserved"),
    ("http://240.0.0.1/", "reserved"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_every_refused_form_names_its_rule(url: str, reason: str) -> None:
    # Given a URL of a refused form / When it is checked / Then it is refused for that reason
    with pytest.raises(OutboundRefused) as refused:
        check_url(url, allow_private=False, resolver=lambda h, p: ["93.184.216.34"])
    assert refused.value.reason == reason
    assert isinstance(refused.value, ValueError)


def test_every_resolved_address_is_checked() -> None:
    # Given a name resolving to one public and one private address
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    # When it is checked / Then the private one refuses it
    with pytest.raises(OutboundRefused) as refused:
        check_url("https://hooks.example/x", allow_private=False, resolver=resolver)
    assert refused.value.reason == "private"


def test_public_name_passes_with_its_addresses() -> None:
    checked = check_url(
        "https://Hooks.Example:8443/x?y=1", allow_private=False, resolver=lambda h, p: ["8.8.8.8"]
    )
    assert (checked.host, checked.port, str(checked.address)) == ("hooks.example", 8443, "8.8.8.8")


def test_unresolvable_name_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(OutboundRefused) as refused:
        check_url("http://nowhere.example/", allow_private=False, resolver=resolver)
    assert refused.value.reason == "unresolvable"


def test_allow_private_admits_loopback_only() -> None:
    assert check_url("http://127.0.0.1:9/", allow_private=True).port == 9
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://2130706433/"):
        with pytest.raises(OutboundRefused):
            check_url(url, allow_private=True)


def test_request_connects_to_the_checked_address_with_the_original_host() -> None:
    with receiver() as rx:
        # Given a name checked while it resolved to the receiver's address
        checked = check_url(
            rx.url(host="hooks.example"), allow_private=True, resolver=lambda h, p: ["127.0.0.1"]
        )
        # When a request is sent (no resolver at all is consulted now)
        answer = pinned_request(checked, "POST", body=b"{}", connect_timeout_s=1, total_timeout_s=2)
    # Then it reached the checked address and said the original host
    assert answer.status == 200
    assert rx.received[0].headers["host"] == f"hooks.example:{rx.port}"


def test_redirect_is_returned_not_followed() -> None:
    with (
        receiver() as target,
        receiver(lambda _: Reply(302, {"Location": target.url("/inside")})) as rx,
    ):
        checked = check_url(rx.url(), allow_private=True)
        answer = pinned_request(checked, "POST", connect_timeout_s=1, total_timeout_s=2)
    assert answer.status == 302
    assert target.received == []


def test_body_is_read_to_the_cap() -> None:
    with receiver(lambda _: Reply(200, body=b"x" * 100_000)) as rx:
        checked = check_url(rx.url(), allow_private=True)
        answer = pinned_request(
            checked, "POST", connect_timeout_s=1, total_timeout_s=2, body_cap_bytes=1000
        )
    assert (len(answer.body), answer.truncated) == (1000, True)


def test_dripping_body_is_cut_at_the_total_deadline() -> None:
    # Given a receiver sending one byte every 50 ms of a 200-byte body (10 s in all)
    with receiver(lambda _: Reply(200, body=b"x" * 200, drip_s=0.05)) as rx:
        checked = check_url(rx.url(), allow_private=True)
        started = time.monotonic()
        # When the exchange may last 0.8 s / Then it ends with a timeout, long before the body
        # would have (a generous bound: a loaded box may be late, never 10 s late)
        with pytest.raises(OutboundTimeout):
            pinned_request(checked, "POST", connect_timeout_s=1, total_timeout_s=0.8)
        assert time.monotonic() - started < 5.0


def test_slow_headers_are_cut_at_the_total_deadline() -> None:
    # Given a receiver that answers after 10 s / When the exchange may last 0.5 s
    with receiver(lambda _: Reply(200, delay_s=10)) as rx:
        checked = check_url(rx.url(), allow_private=True)
        started = time.monotonic()
        with pytest.raises(OutboundTimeout):
            pinned_request(checked, "POST", connect_timeout_s=1, total_timeout_s=0.5)
        # Then it ends with a timeout, long before the answer (a generous bound)
        assert time.monotonic() - started < 5.0


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (and its key), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_is_pinned_to_the_address_and_verified_against_the_name(tmp_path: Path) -> None:
    # Given an HTTPS receiver on 127.0.0.1 whose certificate names hooks.example only
    cert, key = _certificate(tmp_path, "hooks.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with receiver(tls=context) as rx:
        url = f"https://hooks.example:{rx.port}/in"
        checked = check_url(url, allow_private=True, resolver=lambda h, p: ["127.0.0.1"])
        # When a request is sent trusting that certificate
        answer = pinned_request(
            checked, "POST", connect_timeout_s=1, total_timeout_s=3, verify=str(cert)
        )
        # Then it reached the pinned address, with SNI/Host naming the host, verified
        assert answer.status == 200
        assert rx.received[0].headers["host"] == f"hooks.example:{rx.port}"
        # And a name the certificate does not hold is refused by verification
        other = check_url(
            f"https://other.example:{rx.port}/",
            allow_private=True,
            resolver=lambda h, p: ["127.0.0.1"],
        )
        with pytest.raises(requests.exceptions.SSLError):
            pinned_request(other, "POST", connect_timeout_s=1, total_timeout_s=3, verify=str(cert))
