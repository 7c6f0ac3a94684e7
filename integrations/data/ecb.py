"""Central-bank reference rates in the ECB's XML shape: parse, classify, cross rates.

The ECB publishes euro foreign exchange reference rates around 16:00 CET on TARGET business
days (https://www.ecb.europa.eu/stats/eurofxref/): `eurofxref-daily.xml` (the latest day) and
`eurofxref-hist-90d.xml` (about 64 business days), each a `gesmes:Envelope` holding
`<Cube time="YYYY-MM-DD">` per day with `<Cube currency="USD" rate="1.0850"/>` per currency,
rates in units of the currency per 1 EUR. Rates are `Decimal`, read from the text, never float.

A non-EUR base B is derived by cross rates from the same day's file:
rate(B→C) = rate(EUR→C) / rate(EUR→B), and rate(B→EUR) = 1 / rate(EUR→B), rounded half-even
to `CROSS_PLACES` decimal places (the ECB publishes no cross rates; the rounding is ours).
EUR-based rates are kept exactly as published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from integrations.data.base import raw_excerpt
from integrations.errors import IntegrationError, PermanentError
from integrations.http import HttpResponse
from integrations.status import error_for_status

NAMESPACE = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
FILES: Final = {"daily": "eurofxref-daily.xml", "90d": "eurofxref-hist-90d.xml"}
CROSS_PLACES = Decimal("0.000001")
EUR = "EUR"


@dataclass(frozen=True)
class DayRates:
    """One published day: units of each currency per 1 EUR."""

    day: date
    per_eur: dict[str, Decimal]


def malformed(what: str, text: str) -> PermanentError:
    """The error for an answer we cannot read: what was wrong, and how the answer began."""
    return PermanentError(
        f"malformed reference-rate file: {what}; the answer began: {raw_excerpt(text)!r}",
        code="malformed_response",
    )


def classify(response: HttpResponse) -> list[DayRates] | None:
    """The days in an answer, oldest first; None for 304 Not Modified.

    Raises PermanentError (malformed file, other 4xx), TransientError/RateLimited (408, 429,
    5xx) as `integrations.status.error_for_status` maps them.
    """
    if response.status == 304:
        return None
    if 200 <= response.status < 300:
        return parse_reference_rates(response.text)
    error: IntegrationError | None = error_for_status(
        response.status, response.headers, f"reference-rate file answered {response.status}"
    )
    raise error or PermanentError(f"unexpected status {response.status}", code="unexpected")


def parse_reference_rates(text: str) -> list[DayRates]:
    """Every `Cube time=…` of an ECB-shaped file, oldest first; PermanentError when malformed."""
    try:
        root: Element = fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise malformed(f"not well-formed XML ({exc})", text) from exc
    days = [_day(cube, text) for cube in root.iter(f"{{{NAMESPACE}}}Cube") if "time" in cube.attrib]
    if not days:
        raise malformed("no <Cube time=…> element", text)
    return sorted(days, key=lambda d: d.day)


def _day(cube: Element, text: str) -> DayRates:
    try:
        day = date.fromisoformat(cube.attrib["time"])
    except ValueError as exc:
        raise malformed(f"time {cube.attrib['time']!r} is not a date", text) from exc
    rates: dict[str, Decimal] = {}
    for child in cube:
        currency = child.attrib.get("currency", "")
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise malformed(f"{day}: currency {currency!r} is not an ISO 4217 code", text)
        raw = child.attrib.get("rate", "")
        try:
            rate = Decimal(raw)
        except InvalidOperation as exc:
            raise malformed(f"{day} {currency}: rate {raw!r} is not a number", text) from exc
        if not rate.is_finite() or rate <= 0:
            raise malformed(f"{day} {currency}: rate {raw!r} is not positive", text)
        rates[currency] = rate
    if not rates:
        raise malformed(f"{day}: no rates", text)
    return DayRates(day, rates)


def last_business_day(day: date) -> date:
    """`day`, or the Friday before it when it falls on a weekend (no rates are published)."""
    return day - timedelta(days=max(0, day.weekday() - 4))


def on_or_before(days: list[DayRates], wanted: date) -> DayRates:
    """The last published day at or before `wanted` (weekends and holidays fall back)."""
    target = last_business_day(wanted)
    found = [d for d in days if d.day <= target]
    if not found:
        raise PermanentError(
            f"no reference rates published on or before {target}", code="no_rates_for_date"
        )
    return found[-1]


def cross_rates(day: DayRates, base: str, symbols: list[str] | None = None) -> dict[str, Decimal]:
    """Rates of `day` in units of each currency per 1 `base` (see the module docstring).

    Raises PermanentError when `base` or a wanted symbol is not in that day's file.
    """
    per_eur = {EUR: Decimal(1), **day.per_eur}
    if base not in per_eur:
        raise PermanentError(f"no {base} rate on {day.day}", code="unknown_currency")
    wanted = symbols or sorted(c for c in per_eur if c != base)
    missing = [c for c in wanted if c not in per_eur]
    if missing:
        raise PermanentError(f"no {', '.join(missing)} rate on {day.day}", code="unknown_currency")
    if base == EUR:
        return {c: per_eur[c] for c in wanted}
    divisor = per_eur[base]
    return {c: (per_eur[c] / divisor).quantize(CROSS_PLACES, ROUND_HALF_EVEN) for c in wanted}
