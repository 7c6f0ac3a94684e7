"""What `CONVEYOR_ENV=production` refuses at start-up: public placeholder secrets and SQLite.

The defaults in `config/settings.py` let `conveyor up` run against the bundled sandbox with no
set-up, but every one of them is printed in this repository: a deployment that kept
`whsec_sandbox` or the sandbox's Adyen HMAC key accepts webhooks anyone can sign. Outside
development each secret below must come from the environment with a value of its own, and the
database must be one that several hosts can share (PostgreSQL; SQLite is one machine's file).
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings

# Every secret a running process uses. Flower's password is checked where it is used
# (`workers/flower.py`: Flower refuses to start without credentials in every environment).
CHECKED_SECRETS = (
    "sandbox_api_key",
    "stripe_api_key",
    "stripe_webhook_secret",
    "adyen_api_key",
    "adyen_hmac_key",
)
# Secrets with no default at all that production must be given (keys encrypting tenants'
# secrets at rest): refused when empty or a placeholder.
REQUIRED_SECRETS = ("webhook_secret_key",)
# Secrets deliberately not in CHECKED_SECRETS, each with the place that guards it.
SECRETS_GUARDED_ELSEWHERE = (
    "flower_password",
    *REQUIRED_SECRETS,
    # Without it the data secrets routes answer 503: nothing is stored unencrypted.
    "data_secret_key",
    # Without it the API's /metrics answers 404: nothing is exposed.
    "metrics_token",
)
# Placeholders the docs show (`.env.example`: `sk_test_...`, `whsec_...`) and common stand-ins;
# none of them occurs in a generated secret (hex, base64, `sk_live_…` keys).
PLACEHOLDER_MARKERS = ("...", "…", "changeme", "change-me", "change_me", "<your", "your_key")


@dataclass(frozen=True)
class Offence:
    """One setting production refuses: its environment variable and why (never its value)."""

    variable: str
    reason: str

    def __str__(self) -> str:
        return f"{self.variable} {self.reason}"


class InsecureSettings(ValueError):
    """Settings that must not run outside development; the message names every offence."""

    def __init__(self, env: str, offences: list[Offence]) -> None:
        self.offences = offences
        listed = "; ".join(str(offence) for offence in offences)
        super().__init__(
            f"refusing to start with CONVEYOR_ENV={env}: {listed}. Set them in the environment "
            "(see README, Security), or CONVEYOR_ENV=development for a local run"
        )


def _variable(field: str) -> str:
    return f"CONVEYOR_{field.upper()}"


def _secret_offence(settings: Settings, field: str) -> Offence | None:
    value = getattr(settings, field).get_secret_value()
    default = Settings.model_fields[field].default.get_secret_value()
    if not value.strip():
        return Offence(_variable(field), "is empty")
    if value == default:
        return Offence(_variable(field), "is the public placeholder from the source")
    if any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
        return Offence(_variable(field), "looks like a documentation placeholder")
    return None


def production_offences(settings: Settings) -> list[Offence]:
    """Every setting that may not run outside development, in field order; [] in development."""
    if settings.env == "development":
        return []
    offences = [_secret_offence(settings, f) for f in (*CHECKED_SECRETS, *REQUIRED_SECRETS)]
    found = [offence for offence in offences if offence is not None]
    if settings.outbound_allow_loopback:
        found.append(
            Offence(
                "CONVEYOR_OUTBOUND_ALLOW_LOOPBACK",
                "lets tenants aim webhook deliveries at this host's own services (OWASP API7)",
            )
        )
    if settings.database_url.startswith("sqlite"):
        found.append(
            Offence(
                "CONVEYOR_DATABASE_URL",
                "is SQLite, a file on one machine: production runs API, workers and beat on "
                "several hosts, use PostgreSQL",
            )
        )
    return found


def require_safe_settings(settings: Settings) -> None:
    """Raise InsecureSettings naming every offence, unless the settings may run as they are."""
    offences = production_offences(settings)
    if offences:
        raise InsecureSettings(settings.env, offences)
