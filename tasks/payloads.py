"""A job's payload checked as every submit checks it, whoever submits: `POST /v1/jobs`, a
schedule's definition (API and CLI) and each of its firings.

Known job type, the type's payload model, and the card-data/secret screen (tasks/screening.py);
the payload is stored in the model's dumped (normalised) form. Errors name the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from integrations.registry import JOB_TYPES, get_job_type
from tasks.screening import Loc, Refused, screen_value


class InvalidPayload(ValueError):
    """A job type or payload that cannot be accepted: a stable code, a message, details."""

    def __init__(self, code: str, message: str, details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def checked_payload(job_type: str, payload: Any, loc: Loc) -> dict[str, Any]:
    """The payload as a job of `job_type` stores it; InvalidPayload (naming `loc`…) otherwise."""
    found = get_job_type(job_type)
    if found is None:
        raise InvalidPayload(
            "unknown_job_type",
            f"unknown job type {job_type!r}",
            {"loc": [*loc, "type"], "known_types": sorted(JOB_TYPES)},
        )
    try:
        model = found.payload_model.model_validate(payload)
    except ValidationError as exc:
        details = [
            {"loc": [*loc, "payload", *err["loc"]], "message": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidPayload(
            "invalid_payload", f"payload is invalid for {job_type}", details
        ) from exc
    try:
        screen_value(payload, (*loc, "payload"))
    except Refused as exc:
        raise InvalidPayload(exc.code, exc.message, exc.details) from None
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped
