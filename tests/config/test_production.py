"""CONVEYOR_ENV: development runs on the embedded defaults; production refuses every public
placeholder secret and SQLite, naming each setting and never its value."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config.production import (
    CHECKED_SECRETS,
    SECRETS_GUARDED_ELSEWHERE,
    InsecureSettings,
    production_offences,
    require_safe_settings,
)
from config.settings import Settings

PG_URL = "postgresql+psycopg://conveyor:pw@db:5432/conveyor"
OWN_SECRETS = {
    "sandbox_api_key": "sk_own_sandbox_9f3a",
    "stripe_api_key": "sk_live_own_2b8c",
    "stripe_webhook_secret": "whsec_own_77d1",
    "adyen_api_key": "AQE_own_key_51e0",
    "adyen_hmac_key": "0f" * 32,
    "webhook_secret_key": "b3duLWZlcm5ldC1rZXktb2YtMzItYnl0ZXMhIQ==",
}


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {"env": "production", "database_url": PG_URL, **OWN_SECRETS}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_development_is_the_default_and_accepts_the_embedded_defaults() -> None:
    # Given settings with nothing set
    settings = Settings(_env_file=None)
    # When they are checked for start-up
    # Then development is the environment and nothing is refused
    assert settings.env == "development"
    assert production_offences(settings) == []
    require_safe_settings(settings)


def test_production_with_its_own_secrets_and_postgresql_starts() -> None:
    # Given production settings whose every secret is the deployer's own, on PostgreSQL
    settings = _production()
    # When they are checked, Then nothing is refused
    assert production_offences(settings) == []
    require_safe_settings(settings)


@pytest.mark.parametrize("field", CHECKED_SECRETS)
def test_production_refuses_each_secret_left_at_its_public_default(field: str) -> None:
    # Given production settings where only this secret kept the value printed in the source
    default = Settings.model_fields[field].default
    settings = _production(**{field: default})
    # When they are checked
    with pytest.raises(InsecureSettings) as refused:
        require_safe_settings(settings)
    # Then exactly this variable is named, and its value is not printed
    message = str(refused.value)
    assert [o.variable for o in refused.value.offences] == [f"CONVEYOR_{field.upper()}"]
    assert f"CONVEYOR_{field.upper()} is the public placeholder" in message
    assert default.get_secret_value() not in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stripe_api_key", "sk_test_..."),
        ("stripe_webhook_secret", "whsec_..."),
        ("adyen_hmac_key", ""),
        ("sandbox_api_key", "   "),
        ("adyen_api_key", "changeme"),
    ],
)
def test_production_refuses_empty_and_documentation_placeholder_secrets(
    field: str, value: str
) -> None:
    # Given a secret copied from .env.example's comments, or left empty
    settings = _production(**{field: SecretStr(value)})
    # When they are checked, Then that variable is refused
    assert [o.variable for o in production_offences(settings)] == [f"CONVEYOR_{field.upper()}"]


def test_production_refuses_sqlite_whatever_the_file() -> None:
    # Given production settings on an absolute SQLite path
    settings = _production(database_url="sqlite:////srv/conveyor/conveyor.db")
    # When they are checked, Then the database URL is refused with the reason
    offences = production_offences(settings)
    assert [o.variable for o in offences] == ["CONVEYOR_DATABASE_URL"]
    assert "use PostgreSQL" in offences[0].reason


def test_production_on_all_defaults_names_every_offence_in_one_message() -> None:
    # Given production with every default (the sandbox secrets and embedded SQLite)
    settings = Settings(_env_file=None, env="production")
    # When it is checked
    with pytest.raises(InsecureSettings) as refused:
        require_safe_settings(settings)
    # Then one single-line message names every secret and the database
    message = str(refused.value)
    assert "\n" not in message
    for field in CHECKED_SECRETS:
        assert f"CONVEYOR_{field.upper()}" in message
    assert "CONVEYOR_DATABASE_URL" in message
    assert "whsec_sandbox" not in message and "sk_test_sandbox" not in message


def test_every_secret_setting_is_either_checked_or_guarded_where_it_is_used() -> None:
    # Given every SecretStr field of the settings
    secret_fields = {
        name for name, info in Settings.model_fields.items() if info.annotation is SecretStr
    }
    # When compared with the production check's lists
    # Then a new secret cannot slip past the check unclassified
    assert secret_fields == set(CHECKED_SECRETS) | set(SECRETS_GUARDED_ELSEWHERE)


def test_the_environment_is_read_from_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given CONVEYOR_ENV=production in the environment
    monkeypatch.setenv("CONVEYOR_ENV", "production")
    # When settings are read, Then they are production settings
    assert Settings(_env_file=None).env == "production"
