"""Money as integer minor units and an ISO 4217 currency; never a float."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, Strict

# ISO 4217 codes in use (lower case, as Stripe writes them).
ISO_4217 = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp
    byn bzd cad cdf chf clp cny cop crc cuc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp
    gbp gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs
    khr kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr
    mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf
    sar sbd scr sdg sek sgd shp sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd
    twd tzs uah ugx usd uyu uzs ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl
    """.split()  # noqa: SIM905  (a block of codes reads better than 180 strings)
)
# A PAN-looking run of digits; payloads carry provider tokens, never card numbers.
PAN_DIGITS = 13
MAX_AMOUNT = 99_999_999


def _currency(value: str) -> str:
    code = value.lower()
    if code not in ISO_4217:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return code


def _token(value: str) -> str:
    if sum(ch.isdigit() for ch in value) >= PAN_DIGITS:
        raise ValueError("looks like a card number; send a provider payment-method token")
    return value


Currency = Annotated[str, AfterValidator(_currency), Field(examples=["eur"])]
# Strict: a JSON integer and nothing else. `true`, `"12"` and `12.0` are refused (422 naming
# the field) rather than coerced, so what is charged is exactly what was written.
Amount = Annotated[
    int,
    Strict(),
    Field(gt=0, le=MAX_AMOUNT, description="integer minor units (cents); a JSON integer only"),
]
PaymentToken = Annotated[
    str,
    Field(min_length=3, max_length=255, examples=["pm_card_visa"]),
    AfterValidator(_token),
]
