"""Endpoint signing secrets: generated `whsec_…`, stored only encrypted (Fernet, settings key)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes of randomness
# Development only (the settings refuse production without CONVEYOR_WEBHOOK_SECRET_KEY).
_DEVELOPMENT_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"conveyor-development-only").digest())


class SecretUnreadable(Exception):
    """A stored secret does not decrypt under any configured key (the key was changed)."""


def generate_secret() -> str:
    """A new signing secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    """Encrypts secrets at rest; `CONVEYOR_WEBHOOK_SECRET_KEY` is one Fernet key or several,
    comma-separated, newest first (older ones still decrypt, so the key can be rotated)."""

    def __init__(self, settings: Settings) -> None:
        raw = settings.webhook_secret_key.get_secret_value()
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()] or [_DEVELOPMENT_KEY]
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, secret: str) -> str:
        """The stored (encrypted, base64) form of `secret`."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret back from its stored form; raises `SecretUnreadable`."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "the stored secret does not decrypt with the configured key"
            ) from exc
