"""One request log line per call; the correlation id goes back in the answer and onto the job."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from store.keys import IssuedKey
from tests.api.conftest import auth, job_rows, rates_job

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The `http.request` events logged so far (structlog's event dicts)."""
    return [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "http.request"
    ]


def test_a_submit_logs_one_line_and_stores_the_callers_request_id(
    client: TestClient, settings: Settings, tenant_key: IssuedKey, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a caller that sends its own request id
    caplog.set_level(logging.INFO, logger="conveyor.request")
    # When it submits a job and reads it back
    created = client.post(
        "/v1/jobs", json=rates_job(), headers={**auth(tenant_key), "X-Request-ID": "req-42.a"}
    )
    job_id = created.json()["id"]
    read = client.get(f"/v1/jobs/{job_id}", headers=auth(tenant_key))
    # Then the id comes back, is stored on the job, and each call logged one line by template
    assert created.headers["X-Request-ID"] == "req-42.a"
    assert [job.correlation_id for job in job_rows(settings, tenant_key.tenant_id)] == ["req-42.a"]
    lines = request_lines(caplog)
    assert [(x["method"], x["route"], x["status"]) for x in lines] == [
        ("POST", "/v1/jobs", 202),
        ("GET", "/v1/jobs/{job_id}", 200),
    ]
    assert lines[0]["correlation_id"] == "req-42.a"
    assert lines[1]["correlation_id"] == read.headers["X-Request-ID"] != "req-42.a"
    assert all(x["tenant"] == tenant_key.tenant_name for x in lines)
    assert all(isinstance(x["latency_ms"], float) for x in lines)
    # ...and neither the key nor the payload is in any of it
    text = " ".join(str(r.msg) for r in caplog.records)
    assert tenant_key.secret not in text
    assert "'base'" not in text and job_id not in str(lines)


def test_the_trace_id_of_a_traceparent_becomes_the_correlation_id(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given a W3C traceparent and no X-Request-ID
    headers = {**auth(tenant_key), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    # When a job is submitted
    response = client.post("/v1/jobs", json=rates_job(), headers=headers)
    # Then the trace id is the job's correlation id
    assert response.headers["X-Request-ID"] == TRACE_ID
    assert job_rows(settings, tenant_key.tenant_id)[0].correlation_id == TRACE_ID


@pytest.mark.parametrize("given", ["has space", "x" * 101, 'quote"d', "semi;colon"])
def test_an_unsafe_request_id_is_replaced_by_a_generated_one(
    client: TestClient, given: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a request id that could forge or flood log lines
    caplog.set_level(logging.INFO, logger="conveyor.request")
    # When any call is made with it (here an unauthenticated one)
    response = client.get("/v1/jobs", headers={"X-Request-ID": given})
    # Then a generated id is used instead, and the 401 is logged too
    generated = response.headers["X-Request-ID"]
    assert generated != given and uuid.UUID(hex=generated)
    assert [(x["route"], x["status"], x["tenant"]) for x in request_lines(caplog)] == [
        ("/v1/jobs", 401, None)
    ]
