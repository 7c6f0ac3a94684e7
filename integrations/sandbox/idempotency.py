"""Provider-side idempotency: one performance per key, its answer saved and replayed.

A request claims its key, performs, and saves whatever answer the performance produced (a
success, a decline, a refusal such as "amount too large", or an injected 500) before the key
is released. Validation that fails before the claim saves nothing, as at Stripe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.sandbox.errors import ApiError, Dialect, fault_error
from integrations.sandbox.state import Claim, SandboxState, SavedResponse
from integrations.sandbox.wire import Reply, Request

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class Outcome:
    """What one performance answered, and whether money (or a hold) moved."""

    status: int
    body: dict[str, Any]
    effect: bool
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusals:
    """How a provider refuses a key reused with other parameters, or one still in flight."""

    dialect: Dialect
    reused: Callable[[], ApiError]
    in_use: Callable[[], ApiError]


def perform_once(
    state: SandboxState,
    refusals: Refusals,
    key: str,
    fingerprint: str,
    request: Request,
    perform: Callable[[int], Outcome],
) -> Reply:
    """Perform under `key` once; `perform` gets how many times the key was performed before."""
    scope = refusals.dialect
    claim, saved = state.claim(key, fingerprint, scope)
    if claim is Claim.REPLAY and saved is not None:
        return Reply(saved.status, saved.body, saved.headers | {REPLAYED_HEADER: "true"})
    if claim is Claim.REUSED:
        raise refusals.reused()
    if claim is Claim.IN_USE:
        raise refusals.in_use()
    try:
        # The provider "thinks" while the key is in flight, so a concurrent retry is refused.
        time.sleep(request.latency_s)
        outcome = _outcome(refusals.dialect, request, lambda: perform(state.performed(key, scope)))
        saved = SavedResponse(outcome.status, outcome.body, fingerprint, outcome.headers)
        state.save(key, saved, effect=outcome.effect, scope=scope)
    finally:
        state.release(key, scope)
    return Reply(outcome.status, outcome.body, outcome.headers)


def _refused(error: ApiError) -> Outcome:
    # A refusal made after execution began: saved under the key like any answer.
    return Outcome(error.status, error.body, effect=False, headers=error.headers)


def _outcome(dialect: Dialect, request: Request, perform: Callable[[], Outcome]) -> Outcome:
    fault = request.fault
    if fault is not None and fault.status is not None:
        message = f"Injected sandbox fault: HTTP {fault.status}."
        return _refused(
            fault_error(dialect, fault.status, message, fault.retry_after, fault.should_retry)
        )
    try:
        return perform()
    except ApiError as exc:
        return _refused(exc)
