"""The bundled sandbox PSP adapter and job type `payments.sandbox.charge`."""

from __future__ import annotations

from dataclasses import asdict

from integrations.base import Failed, JobContext, JobType, Outcome, Succeeded
from integrations.errors import PermanentError
from integrations.http import HttpClient
from integrations.payments.base import Charge, ChargeRequest, Decline
from integrations.status import stripe_should_retry


class SandboxPayments:
    """Speaks the sandbox's Stripe-like charges API through our HTTP client."""

    def __init__(
        self, base_url: str, api_key: str, http: HttpClient, deadline: float | None = None
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.http = http
        self.deadline = deadline

    def charge(self, request: ChargeRequest, idempotency_key: str) -> Charge | Decline:
        """POST a charge with the idempotency key; a card error becomes a Decline."""
        try:
            response = self.http.request(
                "POST",
                f"{self.base_url}/v1/charges",
                json=request.model_dump(),
                headers={
                    "Authorization": f"Bearer {self.api_key}",
                    "Idempotency-Key": idempotency_key,
                },
                deadline=self.deadline,
                retry_hint=stripe_should_retry,
            )
        except PermanentError as exc:
            body = getattr(exc, "body", None)
            err = body.get("error") if isinstance(body, dict) else None
            if exc.http_status == 402 and isinstance(err, dict) and err.get("type") == "card_error":
                return Decline(
                    code=str(err.get("code", "card_declined")),
                    decline_code=err.get("decline_code"),
                    message=str(err.get("message", "declined")),
                )
            raise
        body = response.body
        return Charge(
            reference=str(body["id"]),
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            status=str(body["status"]),
        )


def charge(payload: ChargeRequest, ctx: JobContext) -> Outcome:
    """Charge through the sandbox PSP; a decline is a `Failed` outcome, not an exception."""
    provider = SandboxPayments(
        ctx.settings.sandbox_url,
        ctx.settings.sandbox_api_key.get_secret_value(),
        ctx.http,
        ctx.deadline,
    )
    ctx.checkpoint("charge")
    result = provider.charge(payload, ctx.idempotency_key("charge"))
    if isinstance(result, Decline):
        return Failed(
            code=result.code,
            message=result.message,
            http_status=402,
            details={"decline_code": result.decline_code},
        )
    return Succeeded(result=asdict(result), http_status=201)


CHARGE = JobType(
    name="payments.sandbox.charge",
    queue="payments",
    payload_model=ChargeRequest,
    handler=charge,
    description="Charge a payment method once through the sandbox PSP.",
)
