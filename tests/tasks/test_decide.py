"""`decide` as a table: each kind of outcome and the state it leads to, no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.outcome import Failed, FailureKind, LedgerEffect, Pending, Succeeded
from store.errors import JobError
from store.states import AttemptOutcome, ErrorClass, JobState
from tasks.decide import (
    AttemptFacts,
    Fault,
    KeyAge,
    NotAttempted,
    Stopped,
    decide,
)
from tasks.policy import EffectivePolicy

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = EffectivePolicy(max_attempts=5, base_s=1.0, cap_s=300.0, max_age_s=86400.0)
FIRST = AttemptFacts(number=1, max_attempts=5, age_from=NOW - timedelta(minutes=1))


def fault(error_class: ErrorClass, code: str = "x", retry_after: float | None = None) -> Fault:
    return Fault(JobError(error_class, code, "message", 503, retry_after))


def half(attempt: AttemptFacts = FIRST, key: KeyAge | None = None, outcome: object = None):
    return decide(outcome, attempt, POLICY, key, NOW, rand=lambda: 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "state", "attempt_outcome", "counts"),
    [
        (Succeeded({"ok": True}), JobState.SUCCEEDED, AttemptOutcome.SUCCEEDED, True),
        (Pending({"reference": "pi_1"}), JobState.AWAITING_PROVIDER, AttemptOutcome.PENDING, True),
        (Failed("card_declined", "no"), JobState.FAILED, AttemptOutcome.FAILED, True),
        (
            Failed("action_required", "3ds", kind=FailureKind.ACTION_REQUIRED),
            JobState.FAILED,
            AttemptOutcome.FAILED,
            True,
        ),
        (Stopped("charge"), JobState.CANCELLED, AttemptOutcome.CANCELLED, True),
        (NotAttempted("breaker open", 30.0), JobState.RETRYING, AttemptOutcome.DEFERRED, False),
        (fault(ErrorClass.PERMANENT), JobState.FAILED, AttemptOutcome.FAILED, True),
        (fault(ErrorClass.TRANSIENT), JobState.RETRYING, AttemptOutcome.RETRY, True),
        (fault(ErrorClass.RATE_LIMITED), JobState.RETRYING, AttemptOutcome.RETRY, True),
        (fault(ErrorClass.UNKNOWN_OUTCOME), JobState.RETRYING, AttemptOutcome.RETRY, True),
        (fault(ErrorClass.INTERNAL), JobState.RETRYING, AttemptOutcome.RETRY, True),
        (fault(ErrorClass.INFRASTRUCTURE), JobState.RETRYING, AttemptOutcome.RETRY, False),
        (
            fault(ErrorClass.UNKNOWN_OUTCOME, "replayed_server_error"),
            JobState.NEEDS_REVIEW,
            AttemptOutcome.UNKNOWN,
            True,
        ),
        (
            fault(ErrorClass.UNKNOWN_OUTCOME, "unreadable_answer"),
            JobState.NEEDS_REVIEW,
            AttemptOutcome.UNKNOWN,
            True,
        ),
    ],
)
def test_each_outcome_leads_to_its_state(
    outcome: object, state: JobState, attempt_outcome: AttemptOutcome, counts: bool
) -> None:
    # When the first attempt met this outcome
    decision = half(outcome=outcome)

    # Then the job moves to its state, and only provider attempts count
    assert (decision.state, decision.outcome, decision.counts) == (state, attempt_outcome, counts)


def test_a_success_carries_its_effects_to_the_ledger() -> None:
    effect = LedgerEffect("charge", "pi_1", "pi_1", 1000, "eur")
    decision = half(outcome=Succeeded({"reference": "pi_1"}, 200, (effect,)))
    assert decision.effects == (effect,) and decision.result == {"reference": "pi_1"}


def test_a_retry_waits_the_jittered_backoff_but_never_less_than_retry_after() -> None:
    # Given attempt 3 (ceiling 4 s, half of it 2 s) and a Retry-After of 10 s
    third = AttemptFacts(number=3, max_attempts=5, age_from=NOW)
    plain = half(third, outcome=fault(ErrorClass.TRANSIENT))
    limited = half(third, outcome=fault(ErrorClass.RATE_LIMITED, retry_after=10.0))

    # Then
    assert plain.next_attempt_at == NOW + timedelta(seconds=2)
    assert limited.next_attempt_at == NOW + timedelta(seconds=10)
    assert limited.retry_after_s == 10.0


def test_the_last_attempt_is_dead_with_retries_exhausted() -> None:
    last = AttemptFacts(number=5, max_attempts=5, age_from=NOW)
    decision = half(last, outcome=fault(ErrorClass.TRANSIENT))
    assert decision.state is JobState.DEAD
    assert decision.error is not None and decision.error.reason == "retries_exhausted"


def test_our_own_infrastructure_failing_does_not_use_up_attempts() -> None:
    last = AttemptFacts(number=5, max_attempts=5, age_from=NOW)
    decision = half(last, outcome=fault(ErrorClass.INFRASTRUCTURE))
    assert decision.state is JobState.RETRYING and not decision.counts


def test_a_retry_past_the_max_age_is_dead() -> None:
    old = AttemptFacts(number=1, max_attempts=5, age_from=NOW - timedelta(days=1))
    decision = half(old, outcome=fault(ErrorClass.TRANSIENT))
    assert decision.state is JobState.DEAD
    assert decision.error is not None and decision.error.reason == "max_age_exceeded"


def test_a_deferral_past_the_max_age_is_dead() -> None:
    old = AttemptFacts(number=1, max_attempts=5, age_from=NOW - timedelta(days=1))
    decision = half(old, outcome=NotAttempted("breaker open", 30.0))
    assert decision.state is JobState.DEAD


def test_an_unknown_outcome_without_a_key_goes_to_review() -> None:
    unkeyed = AttemptFacts(number=1, max_attempts=5, age_from=NOW, retry_unknown=False)
    decision = half(unkeyed, outcome=fault(ErrorClass.UNKNOWN_OUTCOME))
    assert decision.state is JobState.NEEDS_REVIEW


@pytest.mark.parametrize(
    ("age", "unknown_before", "error_class", "state"),
    [
        (timedelta(hours=1), False, ErrorClass.UNKNOWN_OUTCOME, JobState.RETRYING),
        (timedelta(hours=23, minutes=30), False, ErrorClass.UNKNOWN_OUTCOME, JobState.NEEDS_REVIEW),
        (timedelta(hours=23, minutes=30), True, ErrorClass.TRANSIENT, JobState.NEEDS_REVIEW),
        (timedelta(hours=23, minutes=30), False, ErrorClass.TRANSIENT, JobState.RETRYING),
    ],
)
def test_past_key_retention_an_unknown_outcome_is_not_retried_blindly(
    age: timedelta, unknown_before: bool, error_class: ErrorClass, state: JobState
) -> None:
    # Given keys of this age, kept 24 h by the provider, with an hour's margin
    key = KeyAge(age, timedelta(hours=24), timedelta(hours=1), unknown_before)

    # When the attempt fails
    decision = half(key=key, outcome=fault(error_class))

    # Then
    assert decision.state is state
    if state is JobState.NEEDS_REVIEW:
        assert decision.error is not None and decision.error.reason == "key_retention_passed"


def test_a_poll_that_is_still_pending_waits_again_without_counting() -> None:
    # Given a job awaiting its provider since 10 minutes ago
    polling = AttemptFacts(
        number=2, max_attempts=5, age_from=NOW, pending_since=NOW - timedelta(minutes=10)
    )

    # When the poll finds it still pending
    decision = half(polling, outcome=Pending({"reference": "pi_1"}))

    # Then it waits for the next poll, remembering since when
    assert decision.state is JobState.AWAITING_PROVIDER and not decision.counts
    assert decision.next_attempt_at == NOW + timedelta(seconds=polling.poll_s)
    assert decision.result is not None
    assert decision.result["pending_since"] == (NOW - timedelta(minutes=10)).isoformat()


def test_a_pending_answer_past_the_deadline_goes_to_review() -> None:
    late = AttemptFacts(
        number=2,
        max_attempts=5,
        age_from=NOW,
        pending_since=NOW - timedelta(days=3),
        awaiting_max_s=86400.0,
    )
    decision = half(late, outcome=Pending({"reference": "pi_1"}))
    assert decision.state is JobState.NEEDS_REVIEW
    assert decision.error is not None and decision.error.error_class is ErrorClass.AWAITING_TIMEOUT
