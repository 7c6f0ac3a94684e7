"""Deterministic exchange rates over a fixed currency table: market data, not money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

RATES_DATE = "2026-01-01"
PLACES = Decimal("0.000001")

# Units of each currency per 1 EUR; every cross rate is derived from this one table.
PER_EUR: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("1.0850"),
    "GBP": Decimal("0.8460"),
    "JPY": Decimal("162.40"),
    "CHF": Decimal("0.9480"),
    "CAD": Decimal("1.4720"),
    "AUD": Decimal("1.6510"),
    "SEK": Decimal("11.4300"),
    "NOK": Decimal("11.6200"),
    "DKK": Decimal("7.4600"),
}


class UnknownCurrencyError(ValueError):
    """A currency the table does not list; `param` names the query field it came from."""

    def __init__(self, currency: str, param: str) -> None:
        super().__init__(f"Unknown currency: {currency!r}")
        self.currency = currency
        self.param = param


def rates_for(base: str, symbols: list[str] | None = None) -> dict[str, Any]:
    """The rates body for `base`: every other currency when `symbols` is None."""
    base = base.strip().upper()
    if base not in PER_EUR:
        raise UnknownCurrencyError(base, "base")
    wanted = [s.strip().upper() for s in symbols] if symbols is not None else sorted(PER_EUR)
    if symbols is None:
        wanted.remove(base)
    for symbol in wanted:
        if symbol not in PER_EUR:
            raise UnknownCurrencyError(symbol, "symbols")
    rates = {s: float((PER_EUR[s] / PER_EUR[base]).quantize(PLACES)) for s in wanted}
    return {"base": base, "date": RATES_DATE, "rates": rates}
