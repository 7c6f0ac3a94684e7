"""Card data and secrets never reach storage: every client string is screened before a write.

PCI DSS keeps card numbers and security codes out of systems that need not hold them; this API
takes provider tokens only. Any string a submit would store (payload values at any depth, the
job type, the `Idempotency-Key` header, a replay filter) holding a Luhn-valid card number, a
security code (a CVC-like key, or "cvc 123" in text) or an API key (`sk_live_…`, `whsec_…`) is
refused with `422` naming where it was, never what it was, and nothing is written.
"""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from config.redaction import (
    CVC_KEYS,
    find_cvcs,
    find_pans,
    find_secrets,
    is_provider_reference,
    normalise_key,
)

Loc = tuple[str | int, ...]

CARD_DATA_MESSAGE = (
    "card data may not be sent to this API; send a provider payment token (e.g. pm_card_visa)"
)
CREDENTIAL_REFUSAL = "credentials may not be sent in job data; configure them as settings"


def _refuse(code: str, message: str, loc: Loc, kind: str) -> ApiError:
    return ApiError(422, code, message, {"loc": list(loc), "kind": kind})


def _screen_text(text: str, loc: Loc) -> None:
    if find_pans(text):
        raise _refuse("card_data_refused", CARD_DATA_MESSAGE, loc, "card_number")
    if find_cvcs(text):
        raise _refuse("card_data_refused", CARD_DATA_MESSAGE, loc, "security_code")
    if find_secrets(text):
        raise _refuse("secret_refused", CREDENTIAL_REFUSAL, loc, "secret")


def screen(value: Any, loc: Loc) -> None:
    """Raise `422 card_data_refused` / `secret_refused` if any string in `value` holds one.

    `value` is any JSON value; `loc` is where it sits in the request (`("body", "payload")`).
    Keys are screened like values. A provider payment reference (Adyen's 16 alphanumerics,
    which may be all digits) under a reference key is left to the ledger check.
    """
    if isinstance(value, str):
        _screen_text(value, loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = (*loc, str(key))
            name = normalise_key(key)
            _screen_text(str(key), where)
            if name in CVC_KEYS and item not in (None, ""):
                raise _refuse("card_data_refused", CARD_DATA_MESSAGE, where, "security_code")
            if not is_provider_reference(name, item):
                screen(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            screen(item, (*loc, index))


def screen_header(name: str, value: str | None) -> None:
    """Screen one stored request header (`Idempotency-Key`)."""
    if value is not None:
        screen(value, ("header", name))
