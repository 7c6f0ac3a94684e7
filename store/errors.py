"""`JobError`: the one typed value behind `jobs.error` and an attempt's error columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store.states import ErrorClass


@dataclass(frozen=True)
class JobError:
    """Why a job or attempt did not succeed, as stored in `jobs.error` (a JSON object).

    `reason` says why the job stopped where it did when that is not the error itself
    (`retries_exhausted`, `max_age_exceeded`, `key_retention_passed`); `details` holds
    provider particulars such as a `decline_code`. Messages are redacted before they get here.
    """

    error_class: ErrorClass
    code: str
    message: str
    http_status: int | None = None
    retry_after_s: float | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored shape: `{"class", "code", "message", "http_status", ...details}`."""
        body: dict[str, Any] = {
            "class": self.error_class.value,
            "code": self.code,
            "message": self.message,
            "http_status": self.http_status,
        }
        if self.reason is not None:
            body["reason"] = self.reason
        for name, value in self.details.items():
            body.setdefault(name, value)
        return body

    def because(self, reason: str) -> JobError:
        """The same error, stopped for `reason`."""
        return JobError(
            self.error_class,
            self.code,
            self.message,
            self.http_status,
            self.retry_after_s,
            reason,
            self.details,
        )
