"""Webhook settings: development conveniences are refused in production."""

from __future__ import annotations

from cryptography.fernet import Fernet

from config.production import production_offences
from config.settings import Settings


def _offending(settings: Settings) -> set[str]:
    return {offence.variable for offence in production_offences(settings)}


def test_loopback_webhooks_are_refused_in_production() -> None:
    # Given production settings that admit loopback deliveries
    key = Fernet.generate_key().decode()
    settings = Settings(
        _env_file=None, env="production", outbound_allow_loopback=True, webhook_secret_key=key
    )
    # Then start-up names the setting
    assert "CONVEYOR_OUTBOUND_ALLOW_LOOPBACK" in _offending(settings)
    # And development allows it
    assert not production_offences(settings.model_copy(update={"env": "development"}))


def test_production_needs_its_own_webhook_secret_key() -> None:
    # Given production without a key of its own, then with one
    without = Settings(_env_file=None, env="production")
    key = Fernet.generate_key().decode()
    with_key = Settings(_env_file=None, env="production", webhook_secret_key=key)
    # Then only the first is refused for it
    assert "CONVEYOR_WEBHOOK_SECRET_KEY" in _offending(without)
    assert "CONVEYOR_WEBHOOK_SECRET_KEY" not in _offending(with_key)
