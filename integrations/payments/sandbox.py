"""The bundled sandbox PSP's simple charges API, and job type `payments.sandbox.charge`."""

from __future__ import annotations

from datetime import timedelta

from integrations.base import Failed, JobContext, JobType, LedgerEffect, Outcome, Succeeded
from integrations.errors import PermanentError
from integrations.http import HttpClient
from integrations.payments.base import ChargeRequest, Decline, PaymentResult, PaymentStatus
from integrations.status import stripe_should_retry


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
        """POST a charge with the idempotency key; a card error comes back as DECLINED."""
        try:
            response = self.http.request(
                "POST",
                f"{self.base_url}/v1/charges",
                json=request.model_dump(exclude_none=True),
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
                decline = Decline(
                    code=str(err.get("code", "card_declined")),
                    message=str(err.get("message", "declined")),
                    decline_code=err.get("decline_code"),
                )
                return PaymentResult(
                    status=PaymentStatus.DECLINED,
                    reference="",
                    amount=request.amount,
                    currency=request.currency,
                    decline=decline,
                )
            raise
        body = response.body
        return PaymentResult(
            status=PaymentStatus.CAPTURED,
            reference=str(body["id"]),
            amount=int(body["amount"]),
            currency=str(body["currency"]),
            amount_captured=int(body["amount"]),
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
