"""Webhook settings: development conveniences are refused in production."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from config.settings import Settings


def test_loopback_webhooks_are_refused_in_production() -> None:
    key = Fernet.generate_key().decode()
    with pytest.raises(ValidationError, match="ALLOW_LOOPBACK"):
        Settings(
            _env_file=None,
            environment="production",
            webhook_allow_loopback=True,
            webhook_secret_key=key,
        )


def test_production_needs_its_own_secret_key() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET_KEY"):
        Settings(_env_file=None, environment="production")
    key = Fernet.generate_key().decode()
    settings = Settings(_env_file=None, environment="production", webhook_secret_key=key)
    assert not settings.webhook_allow_loopback
