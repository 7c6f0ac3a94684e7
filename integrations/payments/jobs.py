"""Payment job types, `payments.<provider>.<operation>`, and the one table from a provider's
payment status to the job's outcome (docs/design.md §4).

| status                                   | outcome                                        |
|------------------------------------------|------------------------------------------------|
| the operation's done statuses (`DONE`)   | Succeeded, with a ledger effect whose amount    |
|                                          | and currency are the provider's                 |
| PENDING                                  | Pending: the job awaits the provider            |
| DECLINED                                 | Failed (declined): a result, not a crash        |
| ACTION_REQUIRED                          | Failed (action_required): no customer flow here |
| anything else after a 2xx                | UnknownOutcome (`unexpected_status`): review    |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints, create_model

from integrations.base import Failed, JobContext, JobType, LedgerEffect, Outcome, Pending, Succeeded
from integrations.errors import UnknownOutcome
from integrations.outcome import FailureKind
from integrations.payments.base import (
    CaptureRequest,
    ChargeRequest,
    PaymentProvider,
    PaymentResult,
    PaymentStatus,
    PendingPayment,
    RefundRequest,
    VoidRequest,
)
from integrations.payments.providers import PAYMENT_PROVIDERS, PaymentProviderSpec

S = PaymentStatus
# What "done" looks like for each operation.
DONE: dict[str, frozenset[PaymentStatus]] = {
    "charge": frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    "authorize": frozenset({S.AUTHORIZED}),
    "capture": frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    "refund": frozenset({S.REFUNDED, S.PARTIALLY_REFUNDED}),
    "void": frozenset({S.VOIDED}),
}
# The effect's amount when the provider does not state the operation's own amount.
TOTAL: dict[str, Callable[[PaymentResult], int]] = {
    "charge": lambda r: r.amount_captured,
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


def outcome_of(operation: str, result: PaymentResult) -> Outcome:
    """The job's outcome for what the provider answered to `operation` (the table above)."""
    if result.status is S.DECLINED:
        decline = result.decline
        return Failed(
            code=decline.code if decline else "declined",
            message=decline.message if decline else "declined by the provider",
            http_status=402,
            details={"decline_code": decline.decline_code if decline else None},
        )
    if result.status is S.ACTION_REQUIRED:
        return Failed(
            code="action_required",
            message="the provider asks the customer to act (authentication or a redirect); "
            "Conveyor runs no customer-facing flow",
            details={"reference": result.reference},
            kind=FailureKind.ACTION_REQUIRED,
        )
    if result.status is S.PENDING:
        pending = PendingPayment(
            operation,
            result.reference,
            result.operation_reference,
            result.operation_amount if result.operation_amount is not None else result.amount,
            result.currency,
        )
        return Pending(pending.to_json())
    if result.status not in DONE[operation]:
        raise UnknownOutcome(
            f"the provider answered {operation} with a payment {result.status.value}",
            code="unexpected_status",
        )
    amount = (
        result.operation_amount if result.operation_amount is not None else TOTAL[operation](result)
    )
    effect = LedgerEffect(
        operation=operation,
        provider_reference=result.operation_reference or result.reference,
        payment_reference=result.reference,
        amount=amount,
        currency=result.currency,
    )
    return Succeeded(result=_result(result), effects=(effect,))


def _result(result: PaymentResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "reference": result.reference,
        "operation_reference": result.operation_reference,
        # What this operation itself moved (a refund's own amount); the rest is the payment's.
        "operation_amount": result.operation_amount,
        "operation_status": result.operation_status,
        "amount": result.amount,
        "currency": result.currency,
        "amount_captured": result.amount_captured,
        "amount_refunded": result.amount_refunded,
    }


def _call(provider: PaymentProvider, operation: str, payload: Any, key: str) -> PaymentResult:
    method: Callable[[Any, str], PaymentResult] = getattr(provider, operation)
    return method(payload, key)


def _look_up(
    spec: PaymentProviderSpec, provider: PaymentProvider, operation: str, payload: Any, key: str
) -> PaymentResult | None:
    """The effect an earlier attempt may have had, when the provider can tell; else None."""
    if operation in ("charge", "authorize") and spec.lookup_by_key:
        return provider.find_by_key(key)
    if operation in ("capture", "void") and spec.lookup_by_reference:
        found = provider.retrieve(payload.reference)
        if found is not None and found.status in DONE[operation]:
            return found
    return None


def can_look_up(spec: PaymentProviderSpec, operation: str) -> bool:
    """Whether an unknown outcome of `operation` can be settled by asking the provider."""
    if operation in ("charge", "authorize"):
        return spec.lookup_by_key
    return spec.lookup_by_reference and operation in ("capture", "void")


def _handler(spec: PaymentProviderSpec, operation: str) -> Callable[[Any, JobContext], Outcome]:
    def handle(payload: Any, ctx: JobContext) -> Outcome:
        provider = spec.build(ctx.settings, ctx.http, ctx.deadline)
        key = ctx.idempotency_key(operation)
        if ctx.lookup_first:
            # An earlier attempt may have moved money: adopt what the provider holds, if it
            # holds something, instead of sending under a key it may have forgotten.
            found = _look_up(spec, provider, operation, payload, key)
            if found is not None:
                return outcome_of(operation, found)
        ctx.checkpoint(operation)
        return outcome_of(operation, _call(provider, operation, payload, key))

    return handle


def _settler(
    spec: PaymentProviderSpec, operation: str
) -> Callable[[Any, JobContext, dict[str, Any]], Outcome]:
    def settle(payload: Any, ctx: JobContext, pending: dict[str, Any]) -> Outcome:
        provider = spec.build(ctx.settings, ctx.http, ctx.deadline)
        awaited = PendingPayment.from_json(pending)
        found = provider.settle(awaited, ctx.provider_events(awaited.reference))
        if found is None or found.status is S.PENDING:
            return Pending(pending)
        return outcome_of(operation, found)

    return settle


def payload_model(spec: PaymentProviderSpec, operation: str) -> type[BaseModel]:
    """The operation's payload, with `reference` held to the provider's id format."""
    base = PAYLOADS[operation]
    if "reference" not in base.model_fields:
        return base
    reference = Annotated[
        str, StringConstraints(pattern=spec.reference_pattern, min_length=1, max_length=255)
    ]
    name = f"{spec.name.capitalize()}{base.__name__}"
    model: type[BaseModel] = create_model(name, __base__=base, reference=(reference, ...))
    return model


def payment_job_types() -> list[JobType[Any]]:
    """Every `payments.<provider>.<operation>` job type."""
    types: list[JobType[Any]] = []
    for spec in PAYMENT_PROVIDERS.values():
        for operation in PAYLOADS:
            types.append(
                JobType(
                    name=f"payments.{spec.name}.{operation}",
                    queue="payments",
                    payload_model=payload_model(spec, operation),
                    handler=_handler(spec, operation),
                    settle=_settler(spec, operation),
                    description=f"{operation.capitalize()} through {spec.name}, once.",
                    key_retention=spec.key_retention,
                    effectful=True,
                    lookup_by_key=can_look_up(spec, operation),
                )
            )
    return types
