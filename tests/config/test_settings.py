"""Settings: embedded defaults, the environment prefix, and a README row for every variable."""

from __future__ import annotations

import os

import pytest

from config.celery import UnsafeDeliveryConfig, celery_config, check_delivery_settings
from config.settings import Settings
from tests.support.procs import ROOT


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no CONVEYOR_* variables
    for name in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    # When settings are read (ignoring any .env file)
    settings = Settings(_env_file=None)
    # Then SQLite in var/ and local Redis are used
    assert settings.database_url == "sqlite:///./var/conveyor.db"
    assert settings.broker_url == "redis://127.0.0.1:6379/0"


def test_environment_variables_with_the_prefix_override_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a PostgreSQL URL in the environment
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql+psycopg://u@db:5432/c")
    # When settings are read, Then it is used
    assert Settings(_env_file=None).database_url.startswith("postgresql+psycopg")


def test_celery_config_is_json_only_late_ack_and_has_no_result_backend() -> None:
    # Given the default settings, When the Celery config is built
    conf = celery_config(Settings(_env_file=None))
    # Then nothing but JSON is accepted and delivery is at-least-once
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["result_backend"] is None
    assert not conf["task_send_sent_event"]


def test_task_events_wait_for_flower_unless_switched_on() -> None:
    # Given the default settings and settings with task events switched on
    default = celery_config(Settings(_env_file=None))
    switched_on = celery_config(Settings(_env_file=None, worker_task_events=True))
    # Then workers send task events only when asked (Flower asks with enable_events)
    assert default["worker_send_task_events"] is False
    assert switched_on["worker_send_task_events"] is True


def test_every_setting_is_documented_in_the_readme() -> None:
    # Given the README's configuration table
    readme = (ROOT / "README.md").read_text()
    # When each settings field is looked up by its environment variable
    missing = [
        f"CONVEYOR_{name.upper()}"
        for name in Settings.model_fields
        if f"CONVEYOR_{name.upper()}" not in readme
    ]
    # Then none is missing
    assert missing == []


@pytest.mark.parametrize(
    ("lease_s", "deadline_s", "refused"),
    [(3, 2.0, False), (60, 30.0, False), (3, 2.5, True), (10, 10.0, True), (5, 9.0, True)],
)
def test_a_lease_that_could_expire_under_a_live_attempt_is_refused(
    lease_s: int, deadline_s: float, refused: bool
) -> None:
    # Given a lease and an attempt deadline
    settings = Settings(lease_s=lease_s, attempt_deadline_s=deadline_s, visibility_timeout_s=3600)

    # When the worker checks them at start-up / Then only a lease with a second to spare passes
    if refused:
        with pytest.raises(UnsafeDeliveryConfig, match="must not exceed the lease"):
            check_delivery_settings(settings)
    else:
        check_delivery_settings(settings)
