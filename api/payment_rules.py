"""Checks a payment job must pass at submit that need the ledger: refund no more than captured."""

from __future__ import annotations

from dataclasses import replace

from api.errors import ApiError
from store.db import Database
from store.jobs import NewJob
from store.payments import balance


def check_payment_job(db: Database, new: NewJob, loc: tuple[str | int, ...] = ("body",)) -> NewJob:
    """Refunds: the payment must be one of ours, and the amount within what is refundable.

    A refund without an amount is for the whole refundable balance; it is written into the
    payload here so the job (and its ledger row) always knows exactly what it moves.
    """
    family, _, rest = new.type.partition(".")
    provider, _, operation = rest.partition(".")
    if family != "payments" or operation != "refund":
        return new
    reference = str(new.payload["reference"])
    with db.session() as session:
        seen = balance(session, new.tenant_id, provider, reference)
    where = [*loc, "payload"]
    if seen is None:
        raise ApiError(
            422,
            "unknown_payment",
            f"no captured {provider} payment {reference!r} in this tenant's ledger",
            {"loc": [*where, "reference"]},
        )
    currency = new.payload.get("currency")
    if currency is not None and currency != seen.currency:
        raise ApiError(
            422,
            "currency_mismatch",
            f"the payment is in {seen.currency}, not {currency}",
            {"loc": [*where, "currency"], "currency": seen.currency},
        )
    amount = new.payload.get("amount")
    if amount is None:
        amount = seen.refundable
    if amount <= 0 or amount > seen.refundable:
        raise ApiError(
            422,
            "refund_exceeds_captured",
            f"refund of {amount} exceeds the refundable {seen.refundable} {seen.currency}",
            {"loc": [*where, "amount"], "refundable": seen.refundable, "currency": seen.currency},
        )
    payload = {**new.payload, "amount": amount, "currency": seen.currency}
    return replace(new, payload=payload)
