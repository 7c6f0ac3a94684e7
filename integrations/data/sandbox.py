"""Exchange rates from the bundled sandbox data API: job type `data.sandbox.fetch_rates`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from integrations.base import JobContext, JobType, Outcome, Succeeded
from integrations.errors import PermanentError
from integrations.http import HttpResponse
from integrations.status import error_for_status, stripe_should_retry

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
    response = ctx.http.send(
        "GET",
        f"{ctx.settings.sandbox_url}/v1/rates",
        params=params,
        headers={"Authorization": f"Bearer {ctx.settings.sandbox_api_key.get_secret_value()}"},
        deadline=ctx.deadline,
    )
    return Succeeded(result=classify(response), http_status=response.status)


def classify(response: HttpResponse) -> dict[str, Any]:
    """The sandbox data API's answer: the rates object on 2xx, else the error it stands for.

    It speaks Stripe's error dialect (an `error` object, `Stripe-Should-Retry`); a read with no
    effect, so a 2xx it cannot read is a permanent error, not an unknown outcome.
    """
    body = response.body
    if 200 <= response.status < 300:
        if not isinstance(body, dict):
            raise PermanentError(
                "the rates answer is not a JSON object",
                http_status=response.status,
                code="malformed_answer",
            )
        return body
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or f"HTTP {response.status}")
    code = str(err.get("code") or err.get("type") or "sandbox_error")
    hint = stripe_should_retry(response.headers)
    error = error_for_status(response.status, response.headers, message, code, should_retry=hint)
    if error is None:
        raise PermanentError(message, http_status=response.status, code="unexpected_status")
    raise error


FETCH_RATES = JobType(
    name="data.sandbox.fetch_rates",
    queue="data",
    payload_model=FetchRates,
    handler=fetch_rates,
    description="Fetch exchange rates from the sandbox data provider.",
)
