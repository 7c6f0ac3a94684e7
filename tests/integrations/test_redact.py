"""What reaches logs and attempt history: secrets gone, PANs masked, everything else untouched."""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.redaction import (
    API_KEY_TOKEN,
    BASIC_TOKEN,
    BEARER_TOKEN,
    CVC_TEXT,
    FORM_SECRET_FIELD,
    JSON_SECRET_FIELD,
    REDACTED,
    mask_pans,
)
from integrations.redact import (
    excerpt,
    find_pans,
    redact,
    redact_headers,
    redact_text,
    redact_value,
)

NON_LUHN_16 = "1234567812345678"


def card_payload(**card: Any) -> dict[str, Any]:
    """A charge request as a provider adapter would build it."""
    return {
        "amount": 1999,
        "currency": "usd",
        "metadata": {"order_id": "ord_42", "lines": [{"number": 1, "sku": "A-1"}]},
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
        | card,
    }


def luhn_number(rng: random.Random, length: int = 16) -> str:
    """A random card-like number: a brand's leading digit (2-6), Luhn-valid."""
    body = [rng.randrange(2, 7)] + [rng.randrange(10) for _ in range(length - 2)]
    total = 0
    for position, digit in enumerate(reversed(body)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4242424242424242", "[PAN ****4242]"),
        ("paid with 4000 0566 5566 5556 today", "paid with [PAN ****5556] today"),
        ("5555-5555-5555-4444", "[PAN ****4444]"),
        ("amex 378282246310005.", "amex [PAN ****0005]."),
        ("qty 1 4242 4242 4242 4242", "qty 1 [PAN ****4242]"),
        ("glued x4242 4242 4242 4242", "glued x[PAN ****4242]"),
    ],
)
def test_luhn_valid_card_numbers_keep_only_the_last_four(text, expected):
    # Given text carrying a Stripe test card number
    # When it is redacted
    # Then only the last four digits survive
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"order {NON_LUHN_16} shipped",
        "at 2024-01-15 12:00:00 took 1700000000",
        "20 digits 12345678901234567890 stay",
        "epoch ms 1795997973080 and µs 1700000000123407",
        "short 4242 4242",
    ],
)
def test_digit_runs_that_fail_luhn_are_left_alone(text):
    # Given order ids, timestamps and short numbers
    # When the text is redacted
    # Then nothing changes
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk_test_abc", "Authorization: Bearer [REDACTED]"),
        ("bearer eyJhbGciOi.xyz.sig done", "bearer [REDACTED] done"),
        ("key=sk_live_51HabcDEF used", "key=[REDACTED] used"),
        ("restricted rk_test_abc123", "restricted [REDACTED]"),
        ("secret whsec_abc123XYZ", "secret [REDACTED]"),
        ("ours cvk_0f3a9b", "ours [REDACTED]"),
        ("sandbox sk_sandbox_test", "sandbox [REDACTED]"),
        (
            "publishable pk_live_abc and task_abcdefghij",
            "publishable pk_live_abc and task_abcdefghij",
        ),
    ],
)
def test_tokens_and_api_keys_are_removed_from_text(text, expected):
    # Given text with credentials in it
    # When it is redacted
    # Then the credentials are replaced and look-alikes are kept
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "amount=100&card[number]=4242424242424242&card[cvc]=123",
            "amount=100&card[number]=[REDACTED]&card[cvc]=[REDACTED]",
        ),
        (
            "amount=100&card%5Bnumber%5D=4242424242424242&card%5Bcvc%5D=123",
            "amount=100&card%5Bnumber%5D=[REDACTED]&card%5Bcvc%5D=[REDACTED]",
        ),
        (
            "cvc=123&password=hunter2 api_key=abc",
            "cvc=[REDACTED]&password=[REDACTED] api_key=[REDACTED]",
        ),
        ("/v1/charges?currency=usd&api-key=abc", "/v1/charges?currency=usd&api-key=[REDACTED]"),
    ],
)
def test_secret_fields_in_form_and_query_strings_are_removed(body, expected):
    # Given a form-encoded body or query string
    # When it is redacted
    # Then secret values go and the other fields stay
    assert redact_text(body) == expected


def test_secret_fields_in_unparsed_json_text_are_removed():
    # Given a provider response body kept as raw JSON text
    body = (
        '{"amount": 100, "cvc": "123", "Password":"a\\"b", '
        '"card_number": "4000056655665556", "authorization": "Basic dXNlcg=="}'
    )
    # When it is redacted
    result = redact_text(body)
    # Then every secret value is replaced and the rest is intact
    assert result == (
        '{"amount": 100, "cvc": "[REDACTED]", "Password":"[REDACTED]", '
        '"card_number": "[REDACTED]", "authorization": "[REDACTED]"}'
    )


def test_a_card_object_loses_its_number_and_cvc_but_keeps_the_rest():
    # Given a nested charge payload with a card object
    payload = card_payload()
    # When it is redacted
    result = redact(payload)
    # Then the card number and cvc are gone, expiry and other numbers kept
    assert result["card"] == {
        "number": "[REDACTED]",
        "exp_month": 12,
        "exp_year": 2030,
        "cvc": "[REDACTED]",
    }
    assert result["metadata"] == payload["metadata"]


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "proxy-authorization",
        "Set-Cookie",
        "API-KEY",
        "apiKey",
        "x_api_key",
        "client_secret",
        "passwd",
        "refresh_token",
        "CVV2",
        "pan",
        "private_key",
        "stripe_webhook_secret",
        "Stripe-Signature",
    ],
)
def test_secret_keys_are_redacted_whatever_their_case_or_separator(key):
    # Given a dict with a secret under a differently spelled key
    data = {key: "s3cr3t", "currency": "eur"}
    # When it is redacted
    # Then the value is replaced
    assert redact(data) == {key: "[REDACTED]", "currency": "eur"}


def test_strings_anywhere_in_the_data_are_redacted():
    # Given secrets in list items and non-secret fields
    data = {"log": ["Bearer abc", ("4242424242424242",)], "note": "key sk_live_abc"}
    # When the data is redacted
    # Then every string went through text redaction and tuples became lists
    assert redact(data) == {
        "log": ["Bearer [REDACTED]", ["[PAN ****4242]"]],
        "note": "key [REDACTED]",
    }


def test_non_secret_data_is_unchanged():
    # Given a payload with nothing secret in it
    data = {
        "amount": 1999,
        "currency": "usd",
        "id": "ch_3NabcDEF",
        "customer": "cus_123",
        "order_id": NON_LUHN_16,
        "idempotency_key": "job-7:attempt-1",
        "line": {"number": 3},
        "paid": True,
        "refunded": None,
        "rate": 1.5,
    }
    # When it is redacted
    # Then it comes back equal
    assert redact(data) == data


def test_redact_does_not_mutate_its_input():
    # Given a charge payload and a snapshot of it
    payload = card_payload()
    snapshot = copy.deepcopy(payload)
    # When it is redacted
    result = redact(payload)
    # Then the input is untouched and the result shares no containers with it
    assert payload == snapshot
    assert result["card"] is not payload["card"]
    assert result["metadata"]["lines"] is not payload["metadata"]["lines"]


def test_excerpt_renders_redacted_json_with_sorted_keys():
    # Given a payload
    # When an excerpt is taken
    result = excerpt({"currency": "usd", "amount": 100, "card": {"number": "1", "cvc": "1"}})
    # Then it is sorted JSON with secrets replaced
    assert result == (
        '{"amount": 100, "card": {"cvc": "[REDACTED]", "number": "[REDACTED]"}, "currency": "usd"}'
    )


def test_excerpt_truncates_with_a_marker():
    # Given text longer than the limit
    # When an excerpt is taken
    result = excerpt("x" * 30, limit=10)
    # Then it is cut at the limit and says how much was dropped
    assert result == "x" * 10 + "…[truncated 20 chars]"
    assert excerpt("short", limit=10) == "short"


def test_excerpt_never_leaks_more_than_the_last_four_digits_of_a_straddling_pan():
    # Given a PAN that some limits cut in half
    text = "paid with card 4000056655665556 at noon"
    for limit in range(len(text) + 1):
        # When an excerpt is taken at that limit
        head = excerpt(text, limit=limit).split("…[truncated")[0]
        # Then at most the last four digits are visible
        assert "5556".startswith("".join(re.findall(r"\d", head))), head


def test_excerpt_catches_pans_held_as_integers():
    # Given a card number stored as an int, which redact() passes through
    # When an excerpt is taken
    # Then the rendered text is still masked
    assert excerpt({"ref": 4242424242424242}) == '{"ref": [PAN ****4242]}'


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Authorization", "Bearer sk_live_abc", "[REDACTED]"),
        ("Proxy-Authorization", "Basic abc", "[REDACTED]"),
        ("Cookie", "session=abc", "[REDACTED]"),
        ("set-cookie", "session=abc", "[REDACTED]"),
        ("X-Api-Key", "abc", "[REDACTED]"),
        ("Stripe-Signature", "t=1,v1=abc", "[REDACTED]"),
        ("X-Adyen-Hmac-Signature", "abc", "[REDACTED]"),
        ("X-Webhook-Secret", "abc", "[REDACTED]"),
        ("X-Auth-Token", "abc", "[REDACTED]"),
        ("Content-Type", "application/json", "application/json"),
        ("Idempotency-Key", "job-7", "job-7"),
        ("X-Debug", "card 4242424242424242", "card [PAN ****4242]"),
    ],
)
def test_redact_headers_blanks_credentials_and_redacts_other_values(name, value, expected):
    # Given a single request header
    # When the headers are redacted
    # Then credential headers are blanked and others pass through text redaction
    assert redact_headers({name: value}) == {name: expected}


def test_random_luhn_valid_numbers_in_random_text_never_survive():
    # Given 200 Luhn-valid 16-digit numbers, formatted variously, inside random text
    rng = random.Random(0)
    words = ["charge", "card", "id:", "ok", "=", "7", "42", "ref", "-", "failed"]
    for _ in range(200):
        number = luhn_number(rng)
        separator = rng.choice(["", " ", "-"])
        shown = separator.join(number[i : i + 4] for i in range(0, 16, 4))
        before = " ".join(rng.choices(words, k=rng.randrange(4)))
        after = " ".join(rng.choices(words, k=rng.randrange(4)))
        text = f"{before} {shown} {after}"
        # When the text is redacted
        result = redact_text(text)
        # Then the number cannot be recovered even with separators stripped
        assert number not in re.sub(r"[ -]", "", result), (text, result)
        assert "[PAN ****" in result


# The neighbours of a PAN: identifiers that hold long digit runs and must stay whole.
@pytest.mark.parametrize(
    "text",
    [
        "cv-8030b5ce-1234-4a5b-9c8d-4111111111111111-charge",
        "key cv-8030b5ce-1234-4a5b-9c8d-4242424242424242-refund-1 sent",
        "8030b5ce-1234-4a5b-9c8d-4111111111111111",
        "12345678-1234-1234-1234-123456789012",
        "pi_4242424242424242 and ch_4111111111111111",
        "psp 4242424242424242A replayed",
        "job_4111111111111111",
    ],
)
def test_identifiers_holding_digit_runs_are_left_whole(text):
    # Given idempotency keys, UUIDs and provider ids whose digits pass Luhn
    # When the text is redacted
    # Then nothing changes: ops search the provider's dashboard by exactly these
    assert redact_text(text) == text
    assert find_pans(text) == []


def test_find_pans_returns_each_card_number_as_digits():
    # Given text with two card numbers written differently, and a key holding a third
    text = "a 4242 4242 4242 4242, b 5555-5555-5555-4444, key cv-1-4000056655665556-x"
    # When PANs are looked for
    # Then both free-standing numbers are found, the key's digits are not
    assert find_pans(text) == ["4242424242424242", "5555555555554444"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"cvc": "123"}, {"cvc": "[REDACTED]"}),
        ({"securityCode": "737", "cvn": 12}, {"securityCode": "[REDACTED]", "cvn": "[REDACTED]"}),
        ({"Security-Code": "737"}, {"Security-Code": "[REDACTED]"}),
        (
            {"card": {"CVV2": "1234", "exp_month": 1}},
            {"card": {"CVV2": "[REDACTED]", "exp_month": 1}},
        ),
        ({"pspReference": "4242424242424242"}, {"pspReference": "4242424242424242"}),
        ({"note": "4242424242424242"}, {"note": "[PAN ****4242]"}),
        ([{"k": "sk_live_51Habc"}, 3, None], [{"k": "[REDACTED]"}, 3, None]),
        ("Basic dXNlcjpwYXNz", "Basic [REDACTED]"),
    ],
)
def test_redact_value_masks_cvc_fields_pans_and_secrets_in_any_json_value(value, expected):
    # Given a JSON value with a CVC-like key, a PAN or a secret somewhere in it
    # When it is redacted
    # Then exactly those parts are masked (a provider reference stays whole)
    assert redact_value(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cvc 123", "cvc [REDACTED]"),
        ("CVV: 1234 ok", "CVV: [REDACTED] ok"),
        ("security code=737", "security code=[REDACTED]"),
        ("basic plan for 12 users", "basic plan for 12 users"),
        ("cvc is fine", "cvc is fine"),
    ],
)
def test_security_codes_written_in_text_are_masked(text, expected):
    # Given a CVC written out in free text (or look-alikes)
    # When it is redacted
    # Then the code is gone and ordinary words stay
    assert redact_text(text) == expected


@pytest.mark.parametrize("shift", range(-30, 31, 3))
def test_a_large_value_is_redacted_in_its_kept_window_and_a_number_across_the_cut_stays_hidden(
    shift: int,
) -> None:
    # Given a page of records, far longer than the excerpt, with a card number placed around
    # the cut and a secret field inside the kept part
    limit = 200
    filler = "x" * (limit - 40 + shift)
    records: list[dict[str, object]] = [
        {"note": filler, "pan": "4242 4242 4242 4242", "api_key": "k-123"}
    ]
    records += [{"id": i, "name": f"record {i}"} for i in range(500)]

    # When it is excerpted
    text = excerpt(records, limit)

    # Then no digits of the number survive beyond a masked last four, the secret is gone, and
    # the excerpt is cut at the limit
    assert "4242 4242" not in text and "42424242" not in text
    assert "k-123" not in text
    assert text.startswith(text[:limit]) and "[truncated" in text


def _whole_value_excerpt(value: Any, limit: int) -> str:
    """What an excerpt shows when the whole value is redacted before the cut (the reference)."""
    if isinstance(value, str):
        return redact_text(value)[:limit]
    text = redact_text(json.dumps(redact_value(value), sort_keys=True, ensure_ascii=False))
    return text[:limit]


_KEYS = st.sampled_from(
    ["id", "name", "note", "number", "cvc", "exp_month", "api_key", "token", "reference", "x"]
)
_TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "4242 4242 4242 4242",
            "4000056655665556",
            "Bearer abc.def",
            "sk_live_abcdefgh1",
            "cvc 123",
        ]
    ),
)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), _TEXTS)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=30), st.dictionaries(_KEYS, inner, max_size=6)
    ),
    max_leaves=200,
)


@hsettings(max_examples=300, deadline=None)
@given(value=_VALUES, limit=st.integers(min_value=0, max_value=400))
def test_an_excerpt_shows_what_redacting_the_whole_value_would_show(value: Any, limit: int) -> None:
    # Given any JSON value with secrets, card numbers and card objects anywhere in it
    # When an excerpt is taken (a long value: only the elements reaching the window redacted)
    shown = excerpt(value, limit).split("…[truncated")[0]
    # Then its visible part is exactly that of the whole value redacted, then cut
    assert shown == _whole_value_excerpt(value, limit)


def test_a_long_page_is_excerpted_from_its_first_records_only() -> None:
    # Given a page of 10,000 records whose last one holds a card number (never in the window)
    records: list[Any] = [{"id": f"item-{i:07d}", "price": "1.25"} for i in range(10_000)]
    records.append({"note": "4242 4242 4242 4242"})
    # When it is excerpted
    text = excerpt({"data": records}, 300)
    # Then the window is the first records, the rest counted, not shown
    assert text.startswith('{"data": [{"id": "item-0000000", "price": "1.25"}')
    assert "item-0009999" not in text and "[truncated" in text


def _every_text_rule(text: str) -> str:
    """The text rules applied one by one, with no shortcut (the reference)."""
    text = JSON_SECRET_FIELD.sub(rf'\1"{REDACTED}"', text)
    text = FORM_SECRET_FIELD.sub(rf"\1{REDACTED}", text)
    text = CVC_TEXT.sub(rf"\1\2{REDACTED}", text)
    text = BEARER_TOKEN.sub(rf"\1 {REDACTED}", text)
    text = BASIC_TOKEN.sub(rf"\1 {REDACTED}", text)
    text = API_KEY_TOKEN.sub(REDACTED, text)
    return mask_pans(text)


_PIECES = st.sampled_from(
    [" ", "-", "_", ",", "4", "42", "a", "Z", "item 7", "note", "Basic Zm9vYmFyYmF6",
     "Bearer abc.def", "cvc 123", "CVV: 1234", "security code=737", "token=abc", "api-key=1",
     '"token": "abc"', '{"password": 12}', "sk_live_abcdefgh", "rk_abcdefghij", "whsec_abc",
     "cvk_abc", "4242 4242 4242 4242", "4222222222222", "4000-0566-5566-5556"]
)  # fmt: skip


@hsettings(max_examples=500, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=60))
def test_text_without_any_rule_s_trigger_is_returned_as_it_is_and_the_rest_fully_redacted(
    pieces: list[str],
) -> None:
    # Given any text made of the rules' triggers and ordinary characters
    text = "".join(pieces)
    # When it is redacted (text that holds no trigger skips the rules)
    # Then the result is that of every rule applied in turn
    assert redact_text(text) == _every_text_rule(text)
