"""The screen for card data and secrets (tasks/screening.py) as the API answers it: `422
card_data_refused` / `secret_refused` naming where the value was, never what it was."""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from tasks.screening import CARD_DATA_MESSAGE, CREDENTIAL_REFUSAL, Loc, Refused, screen_value

__all__ = ["CARD_DATA_MESSAGE", "CREDENTIAL_REFUSAL", "refused", "screen", "screen_header"]


def refused(exc: Refused) -> ApiError:
    """The 422 a refused value gets."""
    return ApiError(422, exc.code, exc.message, exc.details)


def screen(value: Any, loc: Loc) -> None:
    """Raise `422 card_data_refused` / `secret_refused` if any string in `value` holds one."""
    try:
        screen_value(value, loc)
    except Refused as exc:
        raise refused(exc) from None


def screen_header(name: str, value: str | None) -> None:
    """Screen one stored request header (`Idempotency-Key`)."""
    if value is not None:
        screen(value, ("header", name))
