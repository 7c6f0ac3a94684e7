"""Job type `data.fx.sync_rates`: store central-bank reference rates (ECB XML shape).

Resource `reference_rates` for a EUR base, `reference_rates.<BASE>` for another base (its
rates are cross rates, see `integrations.data.ecb`); natural key `(date, currency)` stored as
`"2026-11-27|USD"`; each record holds the rate as a decimal string. One file is one page; a
304 to `If-None-Match`/`If-Modified-Since` is a success that changes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from integrations.base import JobContext, JobType, Outcome
from integrations.data.base import Page, PageRequest, Record
from integrations.data.ecb import EUR, FILES, DayRates, classify, cross_rates, on_or_before
from integrations.data.sync import run_sync

PROVIDER = "fx"
RESOURCE = "reference_rates"
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


def _date_text(value: object) -> object:
    # pydantic's lax mode reads a number as a Unix timestamp (`0` → 1970-01-01): refuse it.
    if isinstance(value, int | float):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_date_text)]


class SyncRates(BaseModel):
    """Payload: the base currency, which file, and optionally one day and some currencies."""

    model_config = ConfigDict(extra="forbid")

    base: Currency = Field(default=EUR, description="ISO 4217 code the rates are quoted in")
    window: Literal["daily", "90d"] = Field(
        default="daily", description="the latest day, or the last 90 days"
    )
    day: Day | None = Field(
        default=None,
        description="store only this day's rates; a weekend or holiday takes the last "
        "published day before it",
    )
    symbols: list[Currency] = Field(default_factory=list, max_length=50)


def resource_for(base: str) -> str:
    """The resource a base's rates are stored under."""
    return RESOURCE if base == EUR else f"{RESOURCE}.{base}"


def records_for(days: list[DayRates], payload: SyncRates) -> tuple[Record, ...]:
    """One record per (day, currency) in `payload.base`; only `payload.day` when given."""
    chosen = [on_or_before(days, payload.day)] if payload.day is not None else days
    records = []
    for day in chosen:
        rates = cross_rates(day, payload.base, payload.symbols or None)
        for currency, rate in rates.items():
            data = {
                "date": day.day.isoformat(),
                "currency": currency,
                "base": payload.base,
                "rate": str(rate),
            }
            records.append(Record(f"{day.day.isoformat()}|{currency}", data))
    return tuple(records)


def sync_rates(payload: SyncRates, ctx: JobContext) -> Outcome:
    """GET the reference-rate file conditionally and store its rates."""
    url = f"{ctx.settings.fx_base_url.rstrip('/')}/{FILES[payload.window]}"
    # A one-day or some-currency sync stores part of the file: its validators would say
    # "unchanged" to a later whole-file sync, so only a whole-file sync keeps and sends them.
    whole = payload.day is None and not payload.symbols

    def fetch(request: PageRequest) -> Page:
        headers = {"Accept": "application/xml"}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        response = ctx.http.send("GET", url, headers=headers, deadline=ctx.deadline)
        days = classify(response)
        if days is None:
            return Page(
                (), not_modified=True, etag=request.etag, last_modified=request.last_modified
            )
        return Page(
            records_for(days, payload),
            etag=response.headers.get("ETag") if whole else None,
            last_modified=response.headers.get("Last-Modified") if whole else None,
        )

    return run_sync(
        ctx, PROVIDER, resource_for(payload.base), fetch, max_pages=1, conditional=whole
    )


SYNC_RATES = JobType(
    name="data.fx.sync_rates",
    queue="data",
    payload_model=SyncRates,
    handler=sync_rates,
    description="Store central-bank reference exchange rates (ECB XML shape) for a base.",
)
