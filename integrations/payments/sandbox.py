"""The bundled sandbox PSP's simple charges API, and job type `payments.sandbox.charge`."""

from __future__ import annotations

from datetime import timedelta

from integrations.base import Failed, JobContext, JobType, LedgerEffect, Outcome, Succeeded
from integrations.http import HttpClient
from integrations.payments.base import ChargeRequest, Decline, PaymentResult, PaymentStatus
from integrations.payments.stripe import classify


class SandboxPayments:
    """Speaks the sandbox's one-call charges API through our HTTP client."""

    name = "sandbox"

    def __init__(
        self, base_url: str, api_key: str, http: HttpClient, deadline: float | None = None
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.http = http
        self.deadline = deadline

    def charge(self, request: ChargeRequest, idempotency_key: str) -> PaymentResult:
        """POST a charge with the idempotency key; a card error comes back as DECLINED.

        The sandbox's charges API answers in Stripe's dialect (error object,
        `Stripe-Should-Retry`), so Stripe's `classify` reads it.
        """
        response = self.http.send(
            "POST",
            f"{self.base_url}/v1/charges",
            json=request.model_dump(exclude_none=True),
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Idempotency-Key": idempotency_key,
            },
            deadline=self.deadline,
        )
        answer = classify(response)
        if isinstance(answer, Decline):
            return PaymentResult(
                status=PaymentStatus.DECLINED,
                reference="",
                amount=request.amount,
                currency=request.currency,
                decline=answer,
            )
        return PaymentResult(
            status=PaymentStatus.CAPTURED,
            reference=str(answer["id"]),
            amount=int(answer["amount"]),
            currency=str(answer["currency"]),
            amount_captured=int(answer["amount"]),
            idempotency_key=idempotency_key,
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
    if result.decline is not None:
        return Failed(
            code=result.decline.code,
            message=result.decline.message,
            http_status=402,
            details={"decline_code": result.decline.decline_code},
        )
    effect = LedgerEffect(
        "charge", result.reference, result.reference, result.amount, result.currency
    )
    return Succeeded(
        result={
            "reference": result.reference,
            "amount": result.amount,
            "currency": result.currency,
            "status": result.status.value,
        },
        http_status=201,
        effects=(effect,),
    )


CHARGE = JobType(
    name="payments.sandbox.charge",
    queue="payments",
    payload_model=ChargeRequest,
    handler=charge,
    description="Charge a payment method once through the sandbox PSP.",
    key_retention=timedelta(hours=24),
    effectful=True,
)
