"""Standard Webhooks signatures, checked by the `standardwebhooks` verifier and by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integrations.webhooks.secrets import SecretBox, generate_secret
from integrations.webhooks.signing import signed_headers
from tests.conftest import make_settings


def spec_signatures(secret: str, msg_id: str, timestamp: str, body: str) -> str:
    """The signature as the spec defines it, written from the spec, not from our code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_signature_verifies_with_the_library_and_the_spec() -> None:
    # Given a secret and a body
    secret, body = generate_secret(), '{"type":"job.succeeded","data":{"job_id":"j"}}'
    # When we sign it
    headers = signed_headers("evt_1", int(time.time()), body, [secret])
    # Then the reference verifier accepts it, and the spec's formula gives the same signature
    assert Webhook(secret).verify(body, headers) == {
        "type": "job.succeeded",
        "data": {"job_id": "j"},
    }
    expected = spec_signatures(secret, "evt_1", headers["webhook-timestamp"], body)
    assert headers["webhook-signature"] == expected


def test_tampered_body_is_rejected() -> None:
    secret = generate_secret()
    headers = signed_headers("evt_1", int(time.time()), '{"a":1}', [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"a":2}', headers)


def test_rotation_sends_a_signature_per_secret() -> None:
    # Given a new and an old secret during a rotation's grace period
    new, old = generate_secret(), generate_secret()
    headers = signed_headers("evt_2", int(time.time()), "{}", [new, old])
    # Then either secret verifies, and a third does not
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify("{}", headers)
    Webhook(old).verify("{}", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify("{}", headers)


def test_secret_is_sealed_and_opened(tmp_path: object) -> None:
    box = SecretBox(make_settings("sqlite://", "x:"))
    secret = generate_secret()
    sealed = box.seal(secret)
    assert secret not in sealed and "whsec_" not in sealed
    assert box.open(sealed) == secret
