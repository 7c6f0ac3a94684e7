"""Fixtures shared by the task tests that deliver webhooks."""

from __future__ import annotations

import pytest

from config.settings import Settings
from tests.tasks.factories import with_sandbox


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    """Deliveries may reach loopback receivers; retries come back at once; 2 s deadline."""
    return settings.model_copy(
        update={
            "outbound_allow_loopback": True,
            "webhook_backoff_base_s": 0.01,
            "webhook_backoff_cap_s": 0.02,
            "webhook_timeout_s": 2.0,
        }
    )


@pytest.fixture
def hooked(hooks: Settings, sandbox: str) -> Settings:
    """`hooks` aimed at the sandbox: jobs that end there write events and deliver them."""
    return with_sandbox(hooks, sandbox)
