"""Flower's settings and launcher: never without auth, bound where the settings say."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from typing import Any

from celery import Celery

from config.settings import Settings
from workers.flower_auth import FlowerCredentials

# Flower reads FLOWER_* variables as options; these would configure an auth Conveyor replaces.
IGNORED_FLOWER_ENV = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH", "FLOWER_UNAUTHENTICATED_API")


def require_credentials(settings: Settings) -> FlowerCredentials:
    """The exact user and password Flower admits.

    Raises ValueError (`UnsafeCredentials`) when either is missing or cannot be sent in basic
    auth exactly (a ':' in the user, control characters, non-NFC Unicode).
    """
    user = settings.flower_user
    password = settings.flower_password.get_secret_value()
    if not user or not password:
        raise ValueError(
            "refusing to start Flower without auth: set CONVEYOR_FLOWER_USER and "
            "CONVEYOR_FLOWER_PASSWORD (`conveyor up` generates dev credentials)"
        )
    return FlowerCredentials(user, password)


def flower_argv(host: str, port: int) -> list[str]:
    """Flower's own options (auth is not among them: `GatedFlower` checks it)."""
    return [f"--address={host}", f"--port={port}", "--purge_offline_workers=60"]


def run_flower(
    celery_app: Celery, host: str, port: int, credentials: FlowerCredentials, broker_url: str
) -> None:
    """Run Flower in this process behind `GatedFlower`'s exact-credentials gate until SIGTERM.

    Mirrors `flower.command.flower`, minus the comma-splitting basic-auth option.
    """
    from flower import command
    from tornado.options import options

    for name in IGNORED_FLOWER_ENV:
        os.environ.pop(name, None)
    command.apply_env_options()
    command.apply_options(sys.argv[0], flower_argv(host, port))
    # Set before extract_settings so Flower's views know auth is on (XSRF and API checks);
    # GatedFlower replaces it with its own inner pass. The real password never enters options.
    options.basic_auth = ["conveyor-gate:pending"]
    command.extract_settings()
    command.setup_logging()
    from workers.flower_auth import GatedFlower

    settings: dict[str, Any] = dict(command.settings)
    flower_app = GatedFlower(credentials, broker_url, capp=celery_app, options=options, **settings)
    atexit.register(flower_app.stop)
    signal.signal(signal.SIGTERM, command.sigterm_handler)
    flower_app.start_http_server()
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        flower_app.start()
