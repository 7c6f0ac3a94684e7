"""`decide`: from what one attempt met to the job's next state. Pure: no I/O, no clock.

Everything it needs is loaded before it is called (the attempt's facts, the stored policy,
the age of the job's provider keys), so the whole table is unit-tested without a database
(`tests/tasks/test_decide.py`). The rules are docs/design.md §4.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from integrations.outcome import Failed, LedgerEffect, Pending, Succeeded
from store.errors import JobError
from store.states import AttemptOutcome, ErrorClass, JobState
from tasks.backoff import compute_backoff
from tasks.policy import EffectivePolicy

# Unknown outcomes a retry cannot clear up: the provider replays a saved 5xx under the key,
# or it answered 2xx and we could not read it. Both go to review, never to a blind retry.
NEVER_RETRIED_CODES = frozenset({"replayed_server_error", "unreadable_answer"})
PENDING_SINCE = "pending_since"


@dataclass(frozen=True)
class Fault:
    """The attempt raised: its error, classified once where it was raised.

    `provider_fault` is False for failures that say nothing of the provider's health (our own
    deadline ran out before sending): circuit breakers do not count them.
    """

    error: JobError
    provider_fault: bool = True


@dataclass(frozen=True)
class NotAttempted:
    """The provider was not called (breaker open, over a rate limit); come back in `wait_s`."""

    reason: str
    wait_s: float


@dataclass(frozen=True)
class Stopped:
    """The job was cancelled at a checkpoint before `step`."""

    step: str


Attempted = Succeeded | Pending | Failed | Fault | NotAttempted | Stopped


@dataclass(frozen=True)
class AttemptFacts:
    """What is known of the job when its attempt ends.

    `number` is this attempt's 1-based number; `age_from` is the submit or the latest replay;
    `retry_unknown` whether the job type may retry an unknown outcome (it carries a key or is
    read-only); `pending_since` when the provider first answered pending (None: not awaiting).
    """

    number: int
    max_attempts: int
    age_from: datetime
    retry_unknown: bool = True
    pending_since: datetime | None = None
    poll_s: float = 60.0
    awaiting_max_s: float = 86400.0


@dataclass(frozen=True)
class KeyAge:
    """How old the job's provider keys are, against how long the provider keeps them."""

    age: timedelta
    retention: timedelta
    margin: timedelta
    unknown_before: bool  # an earlier attempt ended with an unknown outcome

    @property
    def past_retention(self) -> bool:
        """Whether the provider may already have forgotten the key."""
        return self.age >= self.retention - self.margin


@dataclass(frozen=True)
class Decision:
    """The job's next state and the attempt row's outcome, as the finishing UPDATE writes them."""

    state: JobState
    outcome: AttemptOutcome
    result: dict[str, Any] | None = None
    error: JobError | None = None
    http_status: int | None = None
    next_attempt_at: datetime | None = None
    retry_after_s: float | None = None
    counts: bool = True  # a deferral or a poll is not an attempt at the provider's effect
    effects: tuple[LedgerEffect, ...] = field(default=())


def decide(
    outcome: Attempted,
    attempt: AttemptFacts,
    policy: EffectivePolicy,
    key_age: KeyAge | None,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The next state for a job whose attempt met `outcome`."""
    polling = attempt.pending_since is not None
    match outcome:
        case Succeeded():
            return Decision(
                JobState.SUCCEEDED,
                AttemptOutcome.SUCCEEDED,
                result=outcome.result,
                http_status=outcome.http_status,
                effects=outcome.effects,
                counts=not polling,
            )
        case Pending():
            return _pending(outcome, attempt, now)
        case Failed():
            error = JobError(
                ErrorClass(outcome.kind.value),
                outcome.code,
                outcome.message,
                outcome.http_status,
                details=outcome.details,
            )
            return Decision(
                JobState.FAILED,
                AttemptOutcome.FAILED,
                error=error,
                http_status=outcome.http_status,
                counts=not polling,
            )
        case Stopped():
            error = JobError(ErrorClass.CANCELLED, "cancelled", f"cancelled before {outcome.step}")
            return Decision(JobState.CANCELLED, AttemptOutcome.CANCELLED, error=error)
        case NotAttempted():
            return _deferred(outcome, attempt, policy, now)
        case Fault():
            return _fault(outcome.error, attempt, policy, key_age, now, rand)


def _pending(outcome: Pending, attempt: AttemptFacts, now: datetime) -> Decision:
    since = attempt.pending_since or now
    result = {**outcome.result, PENDING_SINCE: since.isoformat()}
    if now - since >= timedelta(seconds=attempt.awaiting_max_s):
        error = JobError(
            ErrorClass.AWAITING_TIMEOUT,
            "awaiting_provider_timeout",
            f"the provider did not settle within {attempt.awaiting_max_s:g} s",
            outcome.http_status,
            details={"pending": outcome.result},
        )
        return Decision(JobState.NEEDS_REVIEW, AttemptOutcome.UNKNOWN, error=error, counts=False)
    return Decision(
        JobState.AWAITING_PROVIDER,
        AttemptOutcome.PENDING,
        result=result,
        http_status=outcome.http_status,
        next_attempt_at=now + timedelta(seconds=attempt.poll_s),
        counts=attempt.pending_since is None,
    )


def _deferred(
    outcome: NotAttempted, attempt: AttemptFacts, policy: EffectivePolicy, now: datetime
) -> Decision:
    error = JobError(ErrorClass.DEFERRED, "deferred", f"deferred: {outcome.reason}")
    next_at = now + timedelta(seconds=outcome.wait_s)
    if next_at - attempt.age_from > timedelta(seconds=policy.max_age_s):
        return Decision(
            JobState.DEAD, AttemptOutcome.DEFERRED, error=error.because("max_age_exceeded")
        )
    return Decision(
        JobState.RETRYING,
        AttemptOutcome.DEFERRED,
        error=error,
        next_attempt_at=next_at,
        counts=False,
    )


def _fault(
    error: JobError,
    attempt: AttemptFacts,
    policy: EffectivePolicy,
    key_age: KeyAge | None,
    now: datetime,
    rand: Callable[[], float],
) -> Decision:
    status = error.http_status
    if error.error_class in (ErrorClass.PERMANENT, ErrorClass.DECLINED):
        return Decision(JobState.FAILED, AttemptOutcome.FAILED, error=error, http_status=status)
    unknown = error.error_class is ErrorClass.UNKNOWN_OUTCOME
    if unknown and (not attempt.retry_unknown or error.code in NEVER_RETRIED_CODES):
        return Decision(
            JobState.NEEDS_REVIEW, AttemptOutcome.UNKNOWN, error=error, http_status=status
        )
    # Our own database or Redis failing is not the provider's doing: it does not use up the
    # job's attempts (the age limit still bounds it).
    counts = error.error_class is not ErrorClass.INFRASTRUCTURE
    number = attempt.number if counts else max(attempt.number - 1, 1)
    if counts and number >= attempt.max_attempts:
        return Decision(
            JobState.DEAD,
            AttemptOutcome.FAILED,
            error=error.because("retries_exhausted"),
            http_status=status,
            retry_after_s=error.retry_after_s,
        )
    if key_age is not None and (unknown or key_age.unknown_before) and key_age.past_retention:
        # The provider may have forgotten the key: a resend could make a second payment.
        return Decision(
            JobState.NEEDS_REVIEW,
            AttemptOutcome.UNKNOWN,
            error=error.because("key_retention_passed"),
            http_status=status,
        )
    delay = compute_backoff(
        number, base=policy.base_s, cap=policy.cap_s, retry_after=error.retry_after_s, rand=rand
    )
    next_at = now + timedelta(seconds=delay)
    if next_at - attempt.age_from > timedelta(seconds=policy.max_age_s):
        return Decision(
            JobState.DEAD,
            AttemptOutcome.FAILED,
            error=error.because("max_age_exceeded"),
            http_status=status,
            retry_after_s=error.retry_after_s,
        )
    return Decision(
        JobState.RETRYING,
        AttemptOutcome.RETRY,
        error=error,
        http_status=status,
        next_attempt_at=next_at,
        retry_after_s=error.retry_after_s,
        counts=counts,
    )
