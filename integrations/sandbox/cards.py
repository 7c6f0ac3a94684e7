"""The sandbox's test payment methods that decline, shared by its payment APIs.

Stripe's own test cards (https://docs.stripe.com/testing#declined-payments) with their decline
codes, and the one-call API's older `pm_card_declined`; any other `pm_…` is charged.
"""

from __future__ import annotations

DECLINES = {
    "pm_card_declined": "generic_decline",
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeCustomerFail": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
    "pm_card_chargeDeclinedVelocityLimitExceeded": "card_velocity_exceeded",
    "pm_card_radarBlock": "fraudulent",  # blocked by a Radar rule: no charge either way
}
