"""What a handler returns when the provider answered: succeeded, pending, or failed for good.

Failures that may heal (transport errors, 5xx, 429) are raised as `IntegrationError`s
(`integrations/errors.py`); these values are the answers that are final for this attempt.
Each provider's `classify` decides which one a response is; the executor's `decide` (in
`tasks/decide.py`) turns it into the job's next state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class LedgerEffect:
    """Money a provider moved (or held) for one operation, to be written to the ledger once.

    `amount` is in minor units of `currency` (ISO 4217, lower case), both as the provider
    reported them; `provider_reference` names the effect (a refund id), `payment_reference`
    the payment it belongs to (a PaymentIntent id, an Adyen pspReference).
    """

    operation: str
    provider_reference: str
    payment_reference: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Succeeded:
    """The provider did what was asked; `result` is stored on the job, `effects` in the ledger."""

    result: dict[str, Any]
    http_status: int | None = None
    effects: tuple[LedgerEffect, ...] = ()


@dataclass(frozen=True)
class Pending:
    """The provider accepted the request and has not settled it yet (`processing`, `received`).

    The job waits in `awaiting_provider`; a webhook or a poll settles it. `result` says what
    is awaited (it holds the provider's reference), and is handed back to the handler's
    `settle` on the poll.
    """

    result: dict[str, Any]
    http_status: int | None = None


class FailureKind(StrEnum):
    """Why a final failure is final (values are `store.states.ErrorClass` members)."""

    DECLINED = "declined"  # a business refusal: a card decline
    ACTION_REQUIRED = "action_required"  # the customer must act (3-D Secure): no flow here
    PERMANENT = "permanent"  # the request is wrong and stays wrong


@dataclass(frozen=True)
class Failed:
    """A final outcome that is not a success, such as a card decline; not a crash."""

    code: str
    message: str
    http_status: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    kind: FailureKind = FailureKind.DECLINED


Outcome = Succeeded | Pending | Failed
