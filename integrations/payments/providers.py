"""The payment providers Conveyor talks to and what each can do: the one table to add one to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from config.settings import Settings
from integrations.http import HttpClient
from integrations.payments.adyen import AdyenPayments
from integrations.payments.base import PaymentProvider
from integrations.payments.stripe import StripePayments

Build = Callable[[Settings, HttpClient, float | None], PaymentProvider]


@dataclass(frozen=True)
class PaymentProviderSpec:
    """One provider: how to build its adapter, and the capabilities the platform relies on.

    `key_retention`: how long the provider honours an idempotency key (Stripe 24 h, Adyen
    7 days). `lookup_by_key`: it can find a payment by the key we sent (Stripe's search on
    `metadata`), so a retry after an unknown outcome looks before it sends. `lookup_by_reference`:
    it can read a payment by its id. `async_modifications`: captures, refunds and voids are
    answered `received` and settled by webhook. `reference_pattern`: the provider's payment ids.
    """

    name: str
    build: Build
    key_retention: timedelta
    lookup_by_key: bool
    lookup_by_reference: bool
    async_modifications: bool
    reference_pattern: str


def _stripe(settings: Settings, http: HttpClient, deadline: float | None) -> PaymentProvider:
    return StripePayments(
        settings.stripe_base_url,
        settings.stripe_api_key.get_secret_value(),
        http,
        stripe_version=settings.stripe_version,
        deadline=deadline,
    )


def _adyen(settings: Settings, http: HttpClient, deadline: float | None) -> PaymentProvider:
    return AdyenPayments(
        settings.adyen_base_url,
        settings.adyen_api_key.get_secret_value(),
        settings.adyen_merchant_account,
        http,
        deadline=deadline,
    )


PAYMENT_PROVIDERS: dict[str, PaymentProviderSpec] = {
    spec.name: spec
    for spec in (
        PaymentProviderSpec(
            name="stripe",
            build=_stripe,
            key_retention=StripePayments.key_retention,
            lookup_by_key=True,
            lookup_by_reference=True,
            async_modifications=False,
            # https://docs.stripe.com/api/payment_intents/object#payment_intent_object-id
            reference_pattern=r"^pi_[A-Za-z0-9]{1,250}$",
        ),
        PaymentProviderSpec(
            name="adyen",
            build=_adyen,
            key_retention=AdyenPayments.key_retention,
            lookup_by_key=False,
            # Real Adyen has no payment look-up; the sandbox's is a convenience, not relied on.
            lookup_by_reference=False,
            async_modifications=True,
            # pspReference: 16 alphanumeric characters
            reference_pattern=r"^[A-Z0-9]{16}$",
        ),
    )
}
PROVIDERS = tuple(PAYMENT_PROVIDERS)


def provider_for(
    name: str, settings: Settings, http: HttpClient, deadline: float | None = None
) -> PaymentProvider:
    """An adapter for `name` with its credentials from settings; KeyError when unknown."""
    return PAYMENT_PROVIDERS[name].build(settings, http, deadline)
