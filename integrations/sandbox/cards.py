"""The sandbox's test payment methods that decline, shared by its payment APIs.

Stripe's own test cards (https://docs.stripe.com/testing#declined-payments) with their decline
codes, and the one-call API's older `pm_card_declined`; any other `pm_…` is charged.
"""

from __future__ import annotations

DECLINES = {
    "pm_card_declined": "generic_decline",
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
