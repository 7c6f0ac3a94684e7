"""The ECB file reader: exact Decimal rates and cross rates from a fixed file, business days,
and malformed files named as permanent errors with a redacted excerpt."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from integrations.data.ecb import (
    classify,
    cross_rates,
    last_business_day,
    on_or_before,
    parse_reference_rates,
)
from integrations.errors import PermanentError, TransientError
from integrations.http import HttpResponse

# The shape of https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml, two days.
FILE = """<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
    xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>
  <Cube>
    <Cube time='2026-11-27'>
      <Cube currency='USD' rate='1.0850'/>
      <Cube currency='JPY' rate='162.40'/>
      <Cube currency='GBP' rate='0.8460'/>
    </Cube>
    <Cube time='2026-11-26'>
      <Cube currency='USD' rate='1.0900'/>
      <Cube currency='JPY' rate='163.00'/>
      <Cube currency='GBP' rate='0.8500'/>
    </Cube>
  </Cube>
</gesmes:Envelope>
"""


def response(status: int, text: str = "", headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, headers or {}, None, text, 1)


def test_rates_are_decimals_exactly_as_published_oldest_day_first() -> None:
    # Given the fixed file / When it is read
    days = parse_reference_rates(FILE)
    # Then both days come back in date order with the published decimal strings
    assert [d.day for d in days] == [date(2026, 11, 26), date(2026, 11, 27)]
    assert days[1].per_eur == {
        "USD": Decimal("1.0850"),
        "JPY": Decimal("162.40"),
        "GBP": Decimal("0.8460"),
    }
    assert all(isinstance(rate, Decimal) for rate in days[1].per_eur.values())


def test_eur_base_keeps_the_published_rates() -> None:
    # Given the last day / When rates are asked for in EUR
    rates = cross_rates(parse_reference_rates(FILE)[-1], "EUR")
    # Then they are the file's own values
    assert rates == {"GBP": Decimal("0.8460"), "JPY": Decimal("162.40"), "USD": Decimal("1.0850")}


def test_usd_base_is_computed_by_cross_rates_rounded_half_even_to_six_places() -> None:
    # Given the last day / When rates are asked for in USD
    rates = cross_rates(parse_reference_rates(FILE)[-1], "USD")
    # Then each is EUR→C / EUR→USD: 162.40/1.0850 = 149.6774193…, 0.8460/1.0850 = 0.7797235…,
    # and EUR itself is 1/1.0850 = 0.9216589…
    assert rates == {
        "EUR": Decimal("0.921659"),
        "GBP": Decimal("0.779724"),
        "JPY": Decimal("149.677419"),
    }


def test_a_weekend_asks_for_the_last_published_day() -> None:
    # Given a Saturday and a Sunday after the file's Friday
    days = parse_reference_rates(FILE)
    # When the day on or before each is looked up
    # Then both take Friday's rates; a Friday is itself
    assert last_business_day(date(2026, 11, 28)) == date(2026, 11, 27)
    assert last_business_day(date(2026, 11, 29)) == date(2026, 11, 27)
    assert on_or_before(days, date(2026, 11, 29)).day == date(2026, 11, 27)
    assert on_or_before(days, date(2026, 11, 26)).day == date(2026, 11, 26)
    with pytest.raises(PermanentError):
        on_or_before(days, date(2026, 11, 1))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (FILE[: len(FILE) // 2], "not well-formed XML"),
        (FILE.replace("rate='1.0850'", "rate='1,0850'"), "rate '1,0850' is not a number"),
        (FILE.replace("currency='JPY'", "currency='yen'"), "currency 'yen'"),
        (FILE.replace("time='2026-11-27'", "time='27.11.2026'"), "is not a date"),
        ("<html><body>maintenance</body></html>", "no <Cube time=…> element"),
    ],
)
def test_a_malformed_file_is_permanent_and_names_what_was_wrong_with_an_excerpt(
    text: str, named: str
) -> None:
    # Given a 200 whose body is broken / When it is classified
    with pytest.raises(PermanentError) as caught:
        classify(response(200, text))
    # Then the error is permanent, says what was wrong and how the answer began
    assert caught.value.code == "malformed_response"
    assert named in caught.value.message
    assert "the answer began: '" in caught.value.message


def test_304_is_not_modified_and_503_is_transient() -> None:
    # Given a 304 and a 503 / When classified
    # Then the first is "nothing new", the second a transient error
    assert classify(response(304)) is None
    with pytest.raises(TransientError):
        classify(response(503, "down"))


def test_entity_expansion_is_refused_not_expanded() -> None:
    # Given a file with an internal entity (the billion-laughs shape)
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    # When it is read / Then it is refused as malformed
    with pytest.raises(PermanentError):
        parse_reference_rates(bomb)
