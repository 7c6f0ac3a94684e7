"""The retry policy a job runs under: global defaults, then its type's, then its own override."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from config.settings import Settings
from integrations.base import RetryPolicy


@dataclass(frozen=True)
class EffectivePolicy:
    """Every knob filled in and held within the server's caps."""

    max_attempts: int
    base_s: float
    cap_s: float
    max_age_s: float

    def as_dict(self) -> dict[str, Any]:
        """The form stored on the job row."""
        return {
            "max_attempts": self.max_attempts,
            "base_s": self.base_s,
            "cap_s": self.cap_s,
            "max_age_s": self.max_age_s,
        }


def effective_policy(
    settings: Settings, type_policy: RetryPolicy, override: RetryPolicy | None = None
) -> EffectivePolicy:
    """Merge defaults < job type < per-job override, then clamp to the server's caps."""
    layers = [type_policy, override or RetryPolicy()]
    values: dict[str, Any] = {
        "max_attempts": settings.max_attempts,
        "base_s": settings.backoff_base_s,
        "cap_s": settings.backoff_cap_s,
        "max_age_s": settings.retry_max_age_s,
    }
    for layer in layers:
        for field in fields(layer):
            value = getattr(layer, field.name)
            if value is not None:
                values[field.name] = value
    return EffectivePolicy(
        max_attempts=max(1, min(int(values["max_attempts"]), settings.retry_max_attempts_cap)),
        base_s=float(values["base_s"]),
        cap_s=max(float(values["cap_s"]), float(values["base_s"])),
        max_age_s=min(float(values["max_age_s"]), settings.retry_max_age_cap_s),
    )


def stored_policy(settings: Settings, stored: dict[str, Any] | None) -> EffectivePolicy:
    """The policy saved on a job row (rows from before policies existed get the defaults)."""
    if not stored:
        return effective_policy(settings, RetryPolicy())
    return EffectivePolicy(
        max_attempts=int(stored["max_attempts"]),
        base_s=float(stored["base_s"]),
        cap_s=float(stored["cap_s"]),
        max_age_s=float(stored["max_age_s"]),
    )
