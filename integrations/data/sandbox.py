"""Exchange rates from the bundled sandbox data API: job type `data.sandbox.fetch_rates`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from integrations.base import JobContext, JobType, Outcome, Succeeded
from integrations.status import stripe_should_retry

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class FetchRates(BaseModel):
    """Payload: the base currency and, optionally, which rates to fetch."""

    model_config = ConfigDict(extra="forbid")

    base: Currency = Field(description="ISO 4217 code, upper case", examples=["EUR"])
    symbols: list[Currency] = Field(default_factory=list, max_length=50)


def fetch_rates(payload: FetchRates, ctx: JobContext) -> Outcome:
    """GET the rates for `payload.base` and return them as the job's result."""
    params = {"base": payload.base}
    if payload.symbols:
        params["symbols"] = ",".join(payload.symbols)
    response = ctx.http.request(
        "GET",
        f"{ctx.settings.sandbox_url}/v1/rates",
        params=params,
        headers={"Authorization": f"Bearer {ctx.settings.sandbox_api_key.get_secret_value()}"},
        deadline=ctx.deadline,
        retry_hint=stripe_should_retry,
    )
    return Succeeded(result=response.body, http_status=response.status)


FETCH_RATES = JobType(
    name="data.sandbox.fetch_rates",
    queue="data",
    payload_model=FetchRates,
    handler=fetch_rates,
    description="Fetch exchange rates from the sandbox data provider.",
)
