"""The demo: submit sample jobs over HTTP as a client would, and print how they ended."""

from __future__ import annotations

import time
from typing import Any

import requests

TERMINAL = {"succeeded", "failed", "dead", "cancelled", "needs_review"}
DEMO_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("data.sandbox.fetch_rates", {"base": "EUR", "symbols": ["USD", "GBP"]}, "succeeded"),
    (
        "payments.sandbox.charge",
        {"amount": 1999, "currency": "eur", "payment_method": "pm_card_visa"},
        "succeeded",
    ),
    (
        "payments.sandbox.charge",
        {"amount": 500, "currency": "eur", "payment_method": "pm_card_declined"},
        "failed",
    ),
]


def run_demo(api_url: str, api_key: str, timeout_s: float = 60.0) -> bool:
    """Submit the demo jobs, wait for each to end, print a line per job; True if all as expected."""
    headers = {"Authorization": f"Bearer {api_key}"}
    submitted: list[tuple[str, str, str]] = []
    for job_type, payload, expected in DEMO_JOBS:
        response = requests.post(
            f"{api_url}/v1/jobs",
            json={"type": job_type, "payload": payload},
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        job = response.json()
        print(f"  submitted {job_type:<28} -> {response.status_code} {job['id']} ({job['state']})")
        submitted.append((job["id"], job_type, expected))
    ok = True
    deadline = time.monotonic() + timeout_s
    for job_id, job_type, expected in submitted:
        job = _wait_terminal(api_url, headers, job_id, deadline)
        state = job["state"] if job else "still running (deadline passed)"
        detail = _summary(job) if job else ""
        mark = "ok" if job and job["state"] == expected else "UNEXPECTED"
        print(f"  {job_type:<28} {state:<10} {detail}  [{mark}]")
        ok = ok and mark == "ok"
    return ok


def _wait_terminal(
    api_url: str, headers: dict[str, str], job_id: str, deadline: float
) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        response = requests.get(f"{api_url}/v1/jobs/{job_id}", headers=headers, timeout=10)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["state"] in TERMINAL:
            return job
        time.sleep(0.2)
    return None


def _summary(job: dict[str, Any]) -> str:
    attempts = f"attempts={job['attempts']}"
    if job.get("result"):
        return f"{attempts} result={job['result']}"
    if job.get("error"):
        return f"{attempts} error={job['error'].get('code')}: {job['error'].get('message')}"
    return attempts
