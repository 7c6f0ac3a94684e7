"""Flower's settings: never without basic auth, bound where the settings say."""

from __future__ import annotations

from config.settings import Settings


def require_credentials(settings: Settings) -> str:
    """`user:password` for Flower's basic auth; ValueError when either is missing."""
    user = settings.flower_user
    password = settings.flower_password.get_secret_value()
    if not user or not password:
        raise ValueError(
            "refusing to start Flower without auth: set CONVEYOR_FLOWER_USER and "
            "CONVEYOR_FLOWER_PASSWORD (`conveyor up` generates dev credentials)"
        )
    return f"{user}:{password}"


def flower_argv(host: str, port: int) -> list[str]:
    """The `celery flower` arguments (auth comes from FLOWER_BASIC_AUTH in the environment)."""
    return ["flower", f"--address={host}", f"--port={port}", "--purge_offline_workers=60"]
