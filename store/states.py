"""The vocabulary of a job's row: its states, how an attempt ended, and error classes."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life (docs/design.md §3)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    # The provider accepted the request but has not settled it (a PaymentIntent `processing`,
    # an Adyen modification `received`): settled by its webhook or a poll, or sent to review
    # when it stays unsettled past the deadline.
    AWAITING_PROVIDER = "awaiting_provider"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"


TERMINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.DEAD,
        JobState.CANCELLED,
        JobState.NEEDS_REVIEW,
    }
)
# States in which a refund job may still move money, or may have moved it unseen
# (`needs_review`): its `payment_holds` row counts against the payment's refundable balance
# only while the job is in one of these. Every other end (failed, dead, cancelled, however it
# got there) lets go of the hold by the job's state alone, so no terminal path can forget it.
HOLDING_STATES = frozenset(
    {
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.RETRYING,
        JobState.AWAITING_PROVIDER,
        JobState.NEEDS_REVIEW,
    }
)
# States a worker may claim from once `next_attempt_at` (if any) has come.
CLAIMABLE_STATES = frozenset({JobState.QUEUED, JobState.RETRYING, JobState.AWAITING_PROVIDER})
# States whose wait lives in `next_attempt_at`; the due-job publisher queues them when due.
WAITING_STATES = frozenset({JobState.QUEUED, JobState.RETRYING, JobState.AWAITING_PROVIDER})


class AttemptOutcome(StrEnum):
    """How one attempt ended (the `attempts.outcome` column)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"
    PENDING = "pending"  # the provider accepted and has not settled: the job awaits it
    CANCELLED = "cancelled"
    LOST = "lost"
    DUPLICATE = "duplicate"
    DEFERRED = "deferred"
    RECONCILED = "reconciled"


class ErrorClass(StrEnum):
    """What kind of failure a job or attempt met (`jobs.error_class`, `attempts.error_class`).

    The provider-facing classes mirror the exception tree in `integrations/errors.py`.
    """

    TRANSIENT = "transient"  # nothing took effect, or a retry is harmless
    RATE_LIMITED = "rate_limited"
    UNKNOWN_OUTCOME = "unknown_outcome"  # sent; may have taken effect
    PERMANENT = "permanent"  # wrong request: never retried
    DECLINED = "declined"  # a business refusal such as a card decline: a result
    ACTION_REQUIRED = "action_required"  # the customer must act (3-D Secure): no flow here
    DEFERRED = "deferred"  # not attempted: breaker open, rate limit, guard unavailable
    INFRASTRUCTURE = "infrastructure"  # our own database or Redis failed mid-attempt
    CANCELLED = "cancelled"
    INTERNAL = "internal"  # a bug of ours before anything was sent
    DUPLICATE_EFFECT = "duplicate_effect"  # the provider reported an effect the ledger holds
    AWAITING_TIMEOUT = "awaiting_timeout"  # the provider never settled within the deadline
    NOT_CHARGED = "not_charged"  # reconciliation: no payment under the key
    WORKER_LOST = "worker_lost"
    DUPLICATE_DELIVERY = "duplicate_delivery"
