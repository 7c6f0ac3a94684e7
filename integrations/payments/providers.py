"""The payment providers Conveyor can talk to, built from settings: the one place to add one."""

from __future__ import annotations

from config.settings import Settings
from integrations.http import HttpClient
from integrations.payments.adyen import AdyenPayments
from integrations.payments.base import PaymentProvider
from integrations.payments.stripe import StripePayments

# Each provider's adapter class; its `key_retention` is the one statement of how long keys live.
ADAPTERS: dict[str, type[StripePayments] | type[AdyenPayments]] = {
    "stripe": StripePayments,
    "adyen": AdyenPayments,
}
PROVIDERS = tuple(ADAPTERS)


def provider_for(
    name: str, settings: Settings, http: HttpClient, deadline: float | None = None
) -> PaymentProvider:
    """An adapter for `name` with its credentials from settings; KeyError when unknown."""
    if name == "stripe":
        return StripePayments(
            settings.stripe_base_url,
            settings.stripe_api_key.get_secret_value(),
            http,
            stripe_version=settings.stripe_version,
            deadline=deadline,
        )
    if name == "adyen":
        return AdyenPayments(
            settings.adyen_base_url,
            settings.adyen_api_key.get_secret_value(),
            settings.adyen_merchant_account,
            http,
            deadline=deadline,
        )
    raise KeyError(f"no payment provider {name!r}")
