"""The API's key schema and `conveyor keys create` (tasks/names.py) refuse the same values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.admin_keys import KeyCreate
from tasks.names import key_days_refusal, name_refusal

NAMES = [
    "acme",
    "Acme Corp",
    "démo",
    " demo ",
    "demo\t",
    "demo\u200b",  # zero-width space
    "\u202eomed",  # right-to-left override: shows as "demo"
    "a\u2028b",  # line separator
    "Cafe\u0301",  # not NFC
    "Zoë Ltd",  # NFC, an inner space: accepted by both
    "x\x01y",
    "a\x85b",
    "4242424242424242",
    "\ud800",
    "a\x00b",
    "",
    "x" * 100,
    "x" * 101,
]
DAYS = [0.5, 1.0, 3650.0, 0.0, -1.0, 3650.5, 99999.0, 1e9, float("nan"), float("inf")]


@pytest.mark.parametrize("tenant", NAMES)
def test_a_tenant_name_is_refused_by_the_cli_exactly_when_the_api_refuses_it(tenant: str) -> None:
    # Given a tenant name
    # When both doors judge it
    try:
        KeyCreate(tenant=tenant)
        api_refuses = False
    except ValidationError:
        api_refuses = True
    # Then they agree
    assert (name_refusal(tenant) is not None) is api_refuses


@pytest.mark.parametrize("days", DAYS)
def test_a_key_lifetime_is_refused_by_the_cli_exactly_when_the_api_refuses_it(days: float) -> None:
    # Given a lifetime in days
    # When both doors judge it
    try:
        KeyCreate(tenant="acme", expires_in_days=days)
        api_refuses = False
    except ValidationError:
        api_refuses = True
    # Then they agree
    assert (key_days_refusal(days) is not None) is api_refuses
