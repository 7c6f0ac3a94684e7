"""Card data and secrets never reach storage: every client string is screened before a write.

PCI DSS keeps card numbers and security codes out of systems that need not hold them; Conveyor
takes provider tokens only. Any string a submit or a schedule would store (payload values at any
depth, keys included, the job type, a schedule's name, the `Idempotency-Key` header, a replay
filter) holding a Luhn-valid card number, a security code (a CVC-like key, or "cvc 123" in text)
or an API key (`sk_live_…`, `whsec_…`) is refused, naming where it was, never what it was.
The API turns `Refused` into a `422` (api/screening.py); the CLI into exit 2.
"""

from __future__ import annotations

from typing import Any

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


class Refused(ValueError):
    """A value holding card data or a secret: a code, a message, where it was and what kind."""

    def __init__(self, code: str, message: str, loc: Loc, kind: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.loc = loc
        self.kind = kind

    @property
    def details(self) -> dict[str, Any]:
        """The error's details as the API shows them: where, and what kind of data."""
        return {"loc": list(self.loc), "kind": self.kind}


def _card(loc: Loc, kind: str) -> Refused:
    return Refused("card_data_refused", CARD_DATA_MESSAGE, loc, kind)


def _screen_text(text: str, loc: Loc) -> None:
    if find_pans(text):
        raise _card(loc, "card_number")
    if find_cvcs(text):
        raise _card(loc, "security_code")
    if find_secrets(text):
        raise Refused("secret_refused", CREDENTIAL_REFUSAL, loc, "secret")


def screen_value(value: Any, loc: Loc) -> None:
    """Raise Refused if any string in `value` (any JSON value) holds card data or a secret.

    `loc` is where it sits (`("body", "payload")`). Keys are screened like values. A provider
    payment reference (Adyen's 16 alphanumerics, which may be all digits) under a reference key
    is left to the ledger check.
    """
    if isinstance(value, str):
        _screen_text(value, loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = (*loc, str(key))
            name = normalise_key(key)
            _screen_text(str(key), where)
            if name in CVC_KEYS and item not in (None, ""):
                raise _card(where, "security_code")
            if not is_provider_reference(name, item):
                screen_value(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            screen_value(item, (*loc, index))
