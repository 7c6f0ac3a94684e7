"""Provider webhooks over HTTP: signatures checked on the raw body, rows kept once, ids queued."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import delete, select

from api.app import create_app
from config.redaction import redact_value
from config.settings import Settings
from integrations.payments.signing import STRIPE_TOLERANCE_S, adyen_signature, stripe_signature
from store.db import get_database
from store.models import ProviderEvent
from store.provider_events import unprocessed_events
from store.types import utcnow
from tests.api.conftest import error_of
from tests.support.broker import queued_job_ids, queued_messages

STRIPE_URL = "/v1/providers/stripe/webhooks"
ADYEN_URL = "/v1/providers/adyen/webhooks"
APPLY_EVENT = "payments.webhooks.apply_event"
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def provider_events_cleared(settings: Settings) -> Iterator[None]:
    """The shared test database forgets this test's provider events afterwards."""
    yield
    with get_database(settings).session() as session:
        session.execute(delete(ProviderEvent))


def stripe_event(
    event_id: str = "evt_1", event_type: str = "payment_intent.succeeded", **obj: Any
) -> bytes:
    """A Stripe event body as Stripe sends it (compact JSON)."""
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "data": {"object": obj or {"id": "pi_1", "object": "payment_intent"}},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def post_stripe(
    client: TestClient,
    settings: Settings,
    body: bytes,
    *,
    at: float | None = None,
    secret: str | None = None,
) -> Response:
    """POST a body with the Stripe-Signature header Stripe would put on it."""
    key = secret or settings.stripe_webhook_secret.get_secret_value()
    header = stripe_signature(body, key, int(time.time() if at is None else at))
    response: Response = client.post(
        STRIPE_URL,
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response


def adyen_item(
    settings: Settings,
    psp: str,
    event_code: str = "AUTHORISATION",
    success: str = "true",
    original: str | None = None,
) -> dict[str, Any]:
    """A notification item signed with the configured HMAC key."""
    item: dict[str, Any] = {
        "eventCode": event_code,
        "success": success,
        "pspReference": psp,
        "merchantAccountCode": settings.adyen_merchant_account,
        "merchantReference": f"order-{psp}",
        "amount": {"value": 1250, "currency": "EUR"},
        "eventDate": "2026-11-26T12:00:00+01:00",
    }
    if original is not None:
        item["originalReference"] = original
    key = settings.adyen_hmac_key.get_secret_value()
    item["additionalData"] = {"hmacSignature": adyen_signature(item, key)}
    return item


def adyen_body(*items: dict[str, Any]) -> bytes:
    """A standard Adyen notification wrapping these items."""
    wrapped = [{"NotificationRequestItem": item} for item in items]
    return json.dumps({"live": "false", "notificationItems": wrapped}).encode()


def event_rows(settings: Settings) -> list[ProviderEvent]:
    """Every provider event row, oldest first."""
    with get_database(settings).session() as session:
        stmt = select(ProviderEvent).order_by(ProviderEvent.received_at, ProviderEvent.event_id)
        return list(session.scalars(stmt))


def queued(settings: Settings) -> list[str]:
    """Ids waiting on the `payments` queue."""
    return queued_job_ids(settings, "payments")


# Stripe


def test_a_signed_stripe_event_is_kept_once_and_only_its_row_id_is_queued(
    client: TestClient, settings: Settings
) -> None:
    # Given a signed payment_intent event, and no API key at all
    body = stripe_event("evt_ok", "payment_intent.succeeded")

    # When Stripe posts it
    response = post_stripe(client, settings, body)

    # Then it is acknowledged
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    # and one row holds it, linked to the payment intent, not yet processed
    [row] = event_rows(settings)
    assert (row.provider, row.event_id, row.event_type) == (
        "stripe",
        "evt_ok",
        "payment_intent.succeeded",
    )
    assert row.payment_reference == "pi_1"
    assert row.payload == json.loads(body)
    assert row.processed_at is None
    # and the payments queue carries one message naming the task, with only the row id
    client_redis = redis.Redis.from_url(settings.broker_url)
    try:
        [message] = queued_messages(client_redis, settings, "payments")
    finally:
        client_redis.close()
    assert message["headers"]["task"] == APPLY_EVENT
    args, kwargs, _ = message["decoded_body"]
    assert args == [str(row.id)]
    assert kwargs == {}


@pytest.mark.parametrize(
    ("event_type", "obj", "reference"),
    [
        ("payment_intent.payment_failed", {"id": "pi_9", "object": "payment_intent"}, "pi_9"),
        ("charge.succeeded", {"id": "ch_1", "payment_intent": "pi_9"}, "pi_9"),
        ("charge.refunded", {"id": "ch_1", "payment_intent": {"id": "pi_9"}}, "pi_9"),
        ("refund.created", {"id": "re_1", "payment_intent": "pi_9"}, "pi_9"),
        ("charge.succeeded", {"id": "ch_1", "payment_intent": None}, None),
        ("customer.created", {"id": "cus_1"}, None),
    ],
)
def test_the_payment_reference_comes_from_where_each_event_type_keeps_it(
    client: TestClient,
    settings: Settings,
    event_type: str,
    obj: dict[str, Any],
    reference: str | None,
) -> None:
    response = post_stripe(client, settings, stripe_event("evt_ref", event_type, **obj))

    assert response.status_code == 200, response.text
    [row] = event_rows(settings)
    assert row.payment_reference == reference


def test_the_signature_is_checked_on_the_raw_body_not_a_reparsed_one(
    client: TestClient, settings: Settings
) -> None:
    # Given a body laid out unlike any JSON serializer would redo it
    body = (
        b'{ "type" : "payment_intent.created",\n'
        b'  "id": "evt_raw", "data": {"object": {"id": "pi_r"}}}  '
    )

    # Then its own signature verifies
    response = post_stripe(client, settings, body)
    assert response.status_code == 200, response.text
    assert [row.event_id for row in event_rows(settings)] == ["evt_raw"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: body.replace(b"pi_1", b"pi_2"),
        lambda body: body + b" ",
    ],
    ids=["changed-field", "appended-byte"],
)
def test_a_tampered_stripe_body_is_rejected_and_writes_nothing(
    client: TestClient, settings: Settings, tamper: Any
) -> None:
    # Given a header signed for one body, sent with another
    body = stripe_event("evt_tampered")
    header = stripe_signature(
        body, settings.stripe_webhook_secret.get_secret_value(), int(time.time())
    )

    response = client.post(STRIPE_URL, content=tamper(body), headers={"Stripe-Signature": header})

    # Then it is refused in the one error shape, with no row and no message
    error_of(response, 400, "invalid_signature")
    assert event_rows(settings) == []
    assert queued(settings) == []


def test_a_stripe_event_signed_with_another_secret_is_rejected(
    client: TestClient, settings: Settings
) -> None:
    response = post_stripe(client, settings, stripe_event("evt_forged"), secret="whsec_attacker")

    error_of(response, 400, "invalid_signature")
    assert event_rows(settings) == []
    assert queued(settings) == []


# The header carries whole seconds and the check runs a moment after signing, so the
# cases sit 30 s clear of the 300 s boundary on either side; the boundary itself is
# pinned with a fixed clock in tests/integrations/test_signing.py.
@pytest.mark.parametrize(
    "offset", [-(STRIPE_TOLERANCE_S + 30), STRIPE_TOLERANCE_S + 30], ids=["stale", "future"]
)
def test_a_stripe_event_signed_outside_the_tolerance_is_rejected(
    client: TestClient, settings: Settings, offset: int
) -> None:
    response = post_stripe(client, settings, stripe_event("evt_old"), at=time.time() + offset)

    error_of(response, 400, "invalid_signature")
    assert event_rows(settings) == []
    assert queued(settings) == []


@pytest.mark.parametrize(
    "offset", [-(STRIPE_TOLERANCE_S - 30), STRIPE_TOLERANCE_S - 30], ids=["old", "ahead"]
)
def test_a_stripe_event_signed_inside_the_tolerance_is_accepted(
    client: TestClient, settings: Settings, offset: int
) -> None:
    # Given a clock skew inside the tolerance, When the event arrives
    response = post_stripe(client, settings, stripe_event("evt_skewed"), at=time.time() + offset)

    # Then it is kept once, as any fresh event
    assert response.status_code == 200, response.text
    assert len(event_rows(settings)) == 1


@pytest.mark.parametrize("headers", [{}, {"Stripe-Signature": ""}, {"Stripe-Signature": "t=1"}])
def test_an_unsigned_stripe_event_is_rejected(
    client: TestClient, settings: Settings, headers: dict[str, str]
) -> None:
    response = client.post(STRIPE_URL, content=stripe_event("evt_unsigned"), headers=headers)

    error_of(response, 400, "invalid_signature")
    assert event_rows(settings) == []
    assert queued(settings) == []


def test_a_replayed_stripe_event_is_acknowledged_as_a_duplicate_and_kept_once(
    client: TestClient, settings: Settings
) -> None:
    # Given an event already received
    body = stripe_event("evt_twice")
    assert post_stripe(client, settings, body).json() == {"received": True, "duplicate": False}

    # When Stripe sends it again (a retry re-signs it with a new timestamp)
    response = post_stripe(client, settings, body, at=time.time() + 5)

    # Then it is a 2xx duplicate: still one row and one message
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": True}
    [row] = event_rows(settings)
    assert queued(settings) == [str(row.id)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"id": "evt_1", "type": ', "malformed_json"),
        (b"\xff\xfe not utf-8", "malformed_json"),
        (b'["an", "array"]', "malformed_event"),
        (b'{"type": "payment_intent.succeeded", "data": {"object": {}}}', "malformed_event"),
        (
            b'{"id": 7, "type": "payment_intent.succeeded", "data": {"object": {}}}',
            "malformed_event",
        ),
        (b'{"id": "evt_1", "type": "payment_intent.succeeded"}', "malformed_event"),
        (b'{"id": "' + b"x" * 256 + b'", "type": "t", "data": {"object": {}}}', "malformed_event"),
    ],
)
def test_a_correctly_signed_but_malformed_stripe_body_is_rejected(
    client: TestClient, settings: Settings, body: bytes, code: str
) -> None:
    response = post_stripe(client, settings, body)

    error_of(response, 400, code)
    assert event_rows(settings) == []
    assert queued(settings) == []


def test_a_lost_publish_still_answers_2xx_and_leaves_the_row_for_the_sweep(
    settings: Settings,
) -> None:
    # Given the broker is unreachable
    offline = settings.model_copy(update={"broker_url": UNREACHABLE_BROKER})
    with TestClient(create_app(offline)) as client:
        # When a signed event arrives
        response = post_stripe(client, offline, stripe_event("evt_no_broker"))

    # Then Stripe still gets its 2xx, so it does not resend what we hold
    assert response.status_code == 200, response.text
    # and the row waits unprocessed, where the sweep's query finds it
    [row] = event_rows(settings)
    assert row.processed_at is None
    with get_database(settings).session() as session:
        later = utcnow() + timedelta(seconds=1)
        assert unprocessed_events(session, later, 10) == [row.id]


# Adyen


def test_signed_adyen_notifications_are_accepted_one_row_per_item(
    client: TestClient, settings: Settings
) -> None:
    # Given a batch of an authorisation and a capture of it
    auth_item = adyen_item(settings, "8815000000000001")
    capture = adyen_item(settings, "8815000000000002", "CAPTURE", original="8815000000000001")

    # When Adyen posts it
    response = client.post(ADYEN_URL, content=adyen_body(auth_item, capture))

    # Then Adyen gets the literal acknowledgement it expects
    assert response.status_code == 200, response.text
    assert response.text == "[accepted]"
    # and each item is a row, keyed by psp reference, event and outcome
    rows = {row.event_id: row for row in event_rows(settings)}
    assert set(rows) == {"8815000000000001:AUTHORISATION:true", "8815000000000002:CAPTURE:true"}
    # linked to the payment: the original reference for a modification, else its own
    assert rows["8815000000000001:AUTHORISATION:true"].payment_reference == "8815000000000001"
    assert rows["8815000000000002:CAPTURE:true"].payment_reference == "8815000000000001"
    assert rows["8815000000000002:CAPTURE:true"].event_type == "CAPTURE"
    # (stored redacted: the item's HMAC signature is blanked like every secret field)
    assert rows["8815000000000002:CAPTURE:true"].payload == redact_value(capture)
    # and each row id is queued once
    assert sorted(queued(settings)) == sorted(str(row.id) for row in rows.values())


def test_an_adyen_batch_with_one_tampered_item_is_rejected_whole(
    client: TestClient, settings: Settings
) -> None:
    # Given a batch whose second item's amount was changed after signing
    good = adyen_item(settings, "8815000000000003")
    tampered = adyen_item(settings, "8815000000000004")
    tampered["amount"]["value"] = 1

    response = client.post(ADYEN_URL, content=adyen_body(good, tampered))

    # Then nothing of it is kept, not even the good item
    error = error_of(response, 400, "invalid_signature")
    assert error["details"] == {"item": 1}
    assert event_rows(settings) == []
    assert queued(settings) == []


def test_an_unsigned_adyen_item_is_rejected(client: TestClient, settings: Settings) -> None:
    item = adyen_item(settings, "8815000000000005")
    del item["additionalData"]

    error_of(client.post(ADYEN_URL, content=adyen_body(item)), 400, "invalid_signature")
    assert event_rows(settings) == []


def test_an_adyen_item_signed_with_another_key_is_rejected(
    client: TestClient, settings: Settings
) -> None:
    item = adyen_item(settings, "8815000000000006")
    item["additionalData"]["hmacSignature"] = adyen_signature(item, "00" * 32)

    error_of(client.post(ADYEN_URL, content=adyen_body(item)), 400, "invalid_signature")
    assert event_rows(settings) == []


def test_a_replayed_adyen_item_is_accepted_and_kept_once(
    client: TestClient, settings: Settings
) -> None:
    # Given an item already received
    item = adyen_item(settings, "8815000000000007")
    assert client.post(ADYEN_URL, content=adyen_body(item)).text == "[accepted]"

    # When Adyen resends it, in a batch with a new one
    fresh = adyen_item(settings, "8815000000000008", "REFUND", original="8815000000000007")
    response = client.post(ADYEN_URL, content=adyen_body(item, fresh))

    # Then both are accepted, the replay adds neither a row nor a message
    assert response.text == "[accepted]"
    rows = event_rows(settings)
    assert len(rows) == 2
    assert sorted(queued(settings)) == sorted(str(row.id) for row in rows)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"live": "false", "notificationItems": [', "malformed_json"),
        (b'{"live": "false"}', "malformed_event"),
        (b'{"live": "false", "notificationItems": []}', "malformed_event"),
        (b'{"live": "false", "notificationItems": [{"Other": {}}]}', "malformed_event"),
    ],
)
def test_a_malformed_adyen_notification_is_rejected(
    client: TestClient, settings: Settings, body: bytes, code: str
) -> None:
    error_of(client.post(ADYEN_URL, content=body), 400, code)
    assert event_rows(settings) == []


def test_a_signed_adyen_item_without_an_event_code_is_rejected(
    client: TestClient, settings: Settings
) -> None:
    # Given an item that signs correctly (eventCode is signed as an empty field) but has none
    item = adyen_item(settings, "8815000000000009", event_code="")

    error_of(client.post(ADYEN_URL, content=adyen_body(item)), 400, "malformed_event")
    assert event_rows(settings) == []
