"""Prometheus instruments the API and the workers update as jobs flow (`prometheus-client`).

Counters and histograms only, so they aggregate across processes: in a prefork worker pool set
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and the worker endpoint serves
the sum of every child. Gauges of the backlog are not kept here: they are counted in the database
at scrape time (`api/metrics.py`). Labels are bounded sets: job types, queues, providers,
outcomes, states; `tenant` is the tenant's id (one series per tenant that submitted).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Attempt latency buckets (seconds): provider calls run from milliseconds to the 30 s deadline.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

JOBS_SUBMITTED = Counter(
    "conveyor_jobs_submitted_total", "Jobs accepted by the API.", ["type", "tenant"]
)
JOBS_FINISHED = Counter(
    "conveyor_jobs_finished_total",
    "Jobs that reached a terminal state in a worker.",
    ["type", "state", "tenant"],
)
ATTEMPT_DURATION = Histogram(
    "conveyor_attempt_duration_seconds",
    "Time one attempt took, from claim to the provider's answer, by how it ended.",
    ["queue", "provider", "outcome"],
    buckets=LATENCY_BUCKETS_S,
)
DUPLICATE_DELIVERIES = Counter(
    "conveyor_duplicate_deliveries_total",
    "Deliveries of a job another worker had already claimed or finished (turned away).",
)
PUBLISH_FAILURES = Counter(
    "conveyor_publish_failures_total",
    "Job ids that may not have reached the broker (the sweeper publishes them again).",
)
SWEEPER_RECLAIMS = Counter(
    "conveyor_sweeper_reclaims_total",
    "Jobs the sweeper moved: expired leases requeued or sent dead, unclaimed jobs republished.",
    ["action"],
)


def observe_attempt(
    *,
    queue: str,
    provider: str,
    outcome: str,
    latency_s: float,
    job_type: str,
    state: str,
    tenant: str,
    terminal: bool,
) -> None:
    """Record one finished attempt and, when the job ended, the job."""
    ATTEMPT_DURATION.labels(queue, provider or "none", outcome).observe(latency_s)
    if terminal:
        JOBS_FINISHED.labels(job_type, state, tenant).inc()


def observe_sweep(counts: dict[str, int]) -> None:
    """Record what one sweeper pass moved (`republished`, `requeued`, `dead`)."""
    for action, count in counts.items():
        if count:
            SWEEPER_RECLAIMS.labels(action).inc(count)


# --- Outbound webhooks (tasks/webhooks.py) ---------------------------------------------------
# Event → delivery spans the first try (milliseconds) to retries hours or days later.
WEBHOOK_LATENCY_BUCKETS_S = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0,
    86400.0, 259200.0,
)  # fmt: skip
WEBHOOK_DELIVERIES = Counter(
    "conveyor_webhook_deliveries_total",
    "Webhook delivery tries by target kind and outcome.",
    ["kind", "outcome"],
)
WEBHOOK_EVENT_TO_DELIVERY = Histogram(
    "conveyor_webhook_event_to_delivery_seconds",
    "Time from an event's commit to its delivery (2xx), retries included.",
    ["kind"],
    buckets=WEBHOOK_LATENCY_BUCKETS_S,
)


def observe_delivery(kind: str, outcome: str, event_age_s: float | None) -> None:
    """Record one delivery try (`kind` = endpoint · callback) and, when delivered, its latency."""
    WEBHOOK_DELIVERIES.labels(kind, outcome).inc()
    if event_age_s is not None:
        WEBHOOK_EVENT_TO_DELIVERY.labels(kind).observe(max(event_age_s, 0.0))


# --- Provider deferrals (ops) --------------------------------------------------------------

PROVIDER_DEFERRALS = Counter(
    "conveyor_provider_deferrals_total",
    "Jobs deferred before calling their provider, by cause: breaker_open, rate_limit, "
    "tenant_rate_limit, guard_unavailable, sync_continues.",
    ["provider", "cause"],
)


def observe_deferral(provider: str, cause: str) -> None:
    """Record one job the guard deferred (no provider call, no attempt spent)."""
    PROVIDER_DEFERRALS.labels(provider, cause).inc()
