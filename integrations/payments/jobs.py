"""Payment job types, `payments.<provider>.<operation>`, for every provider in one shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from integrations.base import Effect, Failed, JobContext, JobType, Outcome, Succeeded
from integrations.payments.base import (
    CaptureRequest,
    ChargeRequest,
    PaymentProvider,
    PaymentResult,
    RefundRequest,
    VoidRequest,
)
from integrations.payments.providers import ADAPTERS, PROVIDERS, provider_for

# Which operations move money into (captures) or out of (refunds) the ledger.
EFFECT_AMOUNT: dict[str, Callable[[PaymentResult], int]] = {
    "charge": lambda r: r.amount_captured or r.amount,
    "authorize": lambda r: 0,
    "capture": lambda r: r.amount_captured,
    "refund": lambda r: r.amount_refunded,
    "void": lambda r: 0,
}
PAYLOADS: dict[str, type[BaseModel]] = {
    "charge": ChargeRequest,
    "authorize": ChargeRequest,
    "capture": CaptureRequest,
    "refund": RefundRequest,
    "void": VoidRequest,
}


def _result(result: PaymentResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "reference": result.reference,
        "operation_reference": result.operation_reference,
        "amount": result.amount,
        "currency": result.currency,
        "amount_captured": result.amount_captured,
        "amount_refunded": result.amount_refunded,
    }


def _call(provider: PaymentProvider, operation: str, payload: Any, key: str) -> PaymentResult:
    method: Callable[[Any, str], PaymentResult] = getattr(provider, operation)
    return method(payload, key)


def _handler(provider_name: str, operation: str) -> Callable[[Any, JobContext], Outcome]:
    def handle(payload: Any, ctx: JobContext) -> Outcome:
        provider = provider_for(provider_name, ctx.settings, ctx.http, ctx.deadline)
        key = ctx.idempotency_key(operation)
        ctx.checkpoint(operation)
        result = _call(provider, operation, payload, key)
        if result.decline is not None:
            return Failed(
                code=result.decline.code,
                message=result.decline.message,
                http_status=402,
                details={"decline_code": result.decline.decline_code},
            )
        # Refunds always carry their amount (the API fills in the balance); a capture may not.
        explicit = getattr(payload, "amount", None) if operation in ("capture", "refund") else None
        amount = explicit if explicit is not None else EFFECT_AMOUNT[operation](result)
        effects: tuple[Effect, ...] = ()
        if amount > 0 or operation in ("authorize", "void"):
            effects = (
                Effect(
                    operation=operation,
                    provider_reference=result.operation_reference or result.reference,
                    payment_reference=result.reference,
                    amount=amount,
                    currency=result.currency,
                ),
            )
        return Succeeded(result=_result(result), effects=effects)

    return handle


def payment_job_types() -> list[JobType[Any]]:
    """Every `payments.<provider>.<operation>` job type."""
    types: list[JobType[Any]] = []
    for provider_name in PROVIDERS:
        for operation, model in PAYLOADS.items():
            types.append(
                JobType(
                    name=f"payments.{provider_name}.{operation}",
                    queue="payments",
                    payload_model=model,
                    handler=_handler(provider_name, operation),
                    description=f"{operation.capitalize()} through {provider_name}, once.",
                    key_retention=ADAPTERS[provider_name].key_retention,
                )
            )
    return types
