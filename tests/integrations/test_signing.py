"""Webhook signatures: Stripe's `t=…,v1=…` header and Adyen's per-item HMAC, good and forged."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from integrations.payments.signing import (
    SignatureError,
    adyen_signature,
    adyen_signing_data,
    stripe_signature,
    verify_adyen_item,
    verify_stripe,
)

SECRET = "whsec_test_secret"
NOW = 1_760_000_000
PAYLOAD = b'{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}'

# Adyen's published sample key and notification, with the signature Adyen's docs show for it.
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ADYEN_SAMPLE_SIGNATURE = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="


def adyen_item(**fields: Any) -> dict[str, Any]:
    """Adyen's sample AUTHORISATION item, signed with the sample key unless fields change it."""
    item: dict[str, Any] = {
        "eventCode": "AUTHORISATION",
        "success": "true",
        "pspReference": "7914073381342284",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"value": 1130, "currency": "EUR"},
        "additionalData": {"hmacSignature": ADYEN_SAMPLE_SIGNATURE},
    }
    item.update(fields)
    return item


# Stripe


def test_stripe_signature_has_the_header_shape_and_verifies() -> None:
    # Given a header signed now
    header = stripe_signature(PAYLOAD, SECRET, NOW)

    # Then it reads t=<ts>,v1=<64 hex digits>
    timestamp, v1 = header.split(",")
    assert timestamp == f"t={NOW}"
    assert v1.startswith("v1=") and len(v1) == 3 + 64
    int(v1[3:], 16)
    # and it verifies against the same payload and secret
    verify_stripe(PAYLOAD, header, SECRET, now=NOW)


def test_stripe_tampered_payload_is_rejected() -> None:
    header = stripe_signature(PAYLOAD, SECRET, NOW)
    tampered = PAYLOAD.replace(b"pi_1", b"pi_2")

    with pytest.raises(SignatureError, match="no signature matches"):
        verify_stripe(tampered, header, SECRET, now=NOW)


def test_stripe_wrong_secret_is_rejected() -> None:
    header = stripe_signature(PAYLOAD, "whsec_attacker", NOW)

    with pytest.raises(SignatureError, match="no signature matches"):
        verify_stripe(PAYLOAD, header, SECRET, now=NOW)


def test_stripe_timestamp_is_part_of_what_is_signed() -> None:
    # Given a valid signature moved onto another timestamp
    v1 = stripe_signature(PAYLOAD, SECRET, NOW).split(",")[1]

    with pytest.raises(SignatureError, match="no signature matches"):
        verify_stripe(PAYLOAD, f"t={NOW + 1},{v1}", SECRET, now=NOW)


@pytest.mark.parametrize(("age", "ok"), [(300, True), (301, False), (-300, True), (-301, False)])
def test_stripe_tolerance_rejects_stale_and_future_timestamps(age: int, ok: bool) -> None:
    # Given a correctly signed header, `age` seconds old (negative: from the future)
    header = stripe_signature(PAYLOAD, SECRET, NOW - age)

    # Then only those within ±300 s pass
    if ok:
        verify_stripe(PAYLOAD, header, SECRET, now=NOW)
    else:
        with pytest.raises(SignatureError, match="300s from now"):
            verify_stripe(PAYLOAD, header, SECRET, now=NOW)


def test_stripe_tolerance_is_configurable() -> None:
    header = stripe_signature(PAYLOAD, SECRET, NOW - 20)

    with pytest.raises(SignatureError):
        verify_stripe(PAYLOAD, header, SECRET, tolerance_s=10, now=NOW)


@pytest.mark.parametrize("header", [None, ""])
def test_stripe_missing_header_is_rejected(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify_stripe(PAYLOAD, header, SECRET, now=NOW)


def test_stripe_header_without_v1_is_rejected() -> None:
    # Given only a v0 (test-mode scheme) signature
    v0 = stripe_signature(PAYLOAD, SECRET, NOW).split(",")[1].replace("v1=", "v0=")

    with pytest.raises(SignatureError, match="no v1"):
        verify_stripe(PAYLOAD, f"t={NOW},{v0}", SECRET, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=abc",  # no timestamp
        "t=,v1=abc",
        "t=12ab,v1=abc",
        "t=-5,v1=abc",
        f"t={NOW},t={NOW},v1=abc",
        "t=" + "9" * 400 + ",v1=abc",
        f"t={NOW};v1=abc",
    ],
)
def test_stripe_malformed_headers_are_rejected(header: str) -> None:
    with pytest.raises(SignatureError):
        verify_stripe(PAYLOAD, header, SECRET, now=NOW)


def test_stripe_one_valid_v1_among_several_is_enough() -> None:
    # Given the header Stripe sends while a secret rolls: an old signature and the current one
    old = stripe_signature(PAYLOAD, "whsec_old", NOW).split(",")[1]
    current = stripe_signature(PAYLOAD, SECRET, NOW).split(",")[1]

    # Then either order verifies, spaces after commas included
    verify_stripe(PAYLOAD, f"t={NOW},{old},{current}", SECRET, now=NOW)
    verify_stripe(PAYLOAD, f"t={NOW}, {current}, {old}", SECRET, now=NOW)
    # and neither wrong one alone does
    with pytest.raises(SignatureError):
        verify_stripe(PAYLOAD, f"t={NOW},{old},v1=00", SECRET, now=NOW)


def test_stripe_non_ascii_signature_is_rejected_not_crashed() -> None:
    with pytest.raises(SignatureError):
        verify_stripe(PAYLOAD, f"t={NOW},v1=é", SECRET, now=NOW)


# Adyen


def test_adyen_signing_data_follows_adyens_field_order() -> None:
    # Then missing originalReference is an empty field, in its place
    assert adyen_signing_data(adyen_item()) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )


def test_adyen_signature_matches_adyens_published_sample() -> None:
    assert adyen_signature(adyen_item(), ADYEN_KEY) == ADYEN_SAMPLE_SIGNATURE
    # the key is hex, so its case does not matter
    assert adyen_signature(adyen_item(), ADYEN_KEY.lower()) == ADYEN_SAMPLE_SIGNATURE


def test_adyen_valid_item_verifies() -> None:
    verify_adyen_item(adyen_item(), ADYEN_KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": {"value": 1, "currency": "EUR"}},
        {"amount": {"value": 1130, "currency": "USD"}},
        {"success": "false"},
        {"eventCode": "REFUND"},
        {"pspReference": "7914073381342285"},
        {"originalReference": "8814073381342284"},
        {"merchantReference": "other"},
    ],
)
def test_adyen_tampered_item_is_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_adyen_item(adyen_item(**change), ADYEN_KEY)


def test_adyen_wrong_key_is_rejected() -> None:
    other_key = "00" * 32

    with pytest.raises(SignatureError, match="does not match"):
        verify_adyen_item(adyen_item(), other_key)


@pytest.mark.parametrize(
    "additional",
    [None, {}, {"hmacSignature": ""}, {"hmacSignature": 42}, "not-an-object"],
)
def test_adyen_unsigned_item_is_rejected(additional: Any) -> None:
    item = adyen_item()
    if additional is None:
        del item["additionalData"]
    else:
        item["additionalData"] = additional

    with pytest.raises(SignatureError, match="no hmacSignature"):
        verify_adyen_item(item, ADYEN_KEY)


def test_adyen_signing_ignores_fields_adyen_does_not_sign() -> None:
    # Given an item signed by us, then given extra unsigned data
    item = adyen_item(originalReference="8814073381342284")
    item["additionalData"] = {"hmacSignature": adyen_signature(item, ADYEN_KEY)}
    extended = copy.deepcopy(item)
    extended["reason"] = "anything"
    extended["additionalData"]["authCode"] = "1234"

    # Then both verify: the HMAC covers only Adyen's eight fields
    verify_adyen_item(item, ADYEN_KEY)
    verify_adyen_item(extended, ADYEN_KEY)


def test_adyen_item_with_wrongly_typed_fields_is_rejected() -> None:
    with pytest.raises(SignatureError):
        verify_adyen_item(adyen_item(amount="1130 EUR"), ADYEN_KEY)
    with pytest.raises(SignatureError):
        verify_adyen_item(adyen_item(pspReference=["a"]), ADYEN_KEY)
