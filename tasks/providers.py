"""Each provider's circuit breaker as operators see it: read it, close it by hand."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import RedisError

from config.settings import Settings
from integrations.guard import ProviderGuard, get_guard, parse_limits
from integrations.registry import JOB_TYPES


@dataclass(frozen=True)
class ProviderStatus:
    """One provider: its breaker's state (`closed`, `open`, `half_open`; `unknown` while Redis
    cannot answer), job types, rate limit.

    `rate_limit` reads `N/Ws` (CONVEYOR_RATE_LIMITS), or "" when the provider has none.
    """

    provider: str
    breaker: str
    job_types: tuple[str, ...]
    rate_limit: str = ""


def providers() -> dict[str, tuple[str, ...]]:
    """Provider name -> the job types that call it, from the registry."""
    found: dict[str, list[str]] = {}
    for name, job_type in sorted(JOB_TYPES.items()):
        found.setdefault(job_type.provider, []).append(name)
    return {provider: tuple(names) for provider, names in sorted(found.items())}


def provider_of(job_type: str) -> str:
    """The provider a job type calls (`payments.stripe.charge` -> `stripe`)."""
    registered = JOB_TYPES.get(job_type)
    if registered is not None:
        return registered.provider
    parts = job_type.split(".")
    return parts[1] if len(parts) == 3 else "unknown"


def provider_statuses(settings: Settings) -> list[ProviderStatus]:
    """Every registered provider with its breaker's state as all workers see it (Redis)."""
    guard = get_guard(settings)
    limits = parse_limits(settings.rate_limits)
    return [
        ProviderStatus(
            name,
            _breaker_state(guard, name),
            types,
            f"{limits[name].count}/{limits[name].window_s:g}s" if name in limits else "",
        )
        for name, types in providers().items()
    ]


def close_breaker(settings: Settings, provider: str) -> None:
    """Close a provider's breaker now (an operator knows it has recovered)."""
    breaker = get_guard(settings).breaker(provider)
    breaker.client.delete(f"{breaker.key}:open")
    breaker.success()


def _breaker_state(guard: ProviderGuard, provider: str) -> str:
    """The breaker's state, or `unknown` while Redis cannot say (a status page still renders)."""
    try:
        return str(guard.breaker(provider).state().value)
    except RedisError:
        return "unknown"
