"""Property: whatever a client puts in any string, datetime or JSON field, the API never answers
5xx, and a refused request writes nothing (SQLite and PostgreSQL).

The generators are the kinds that once broke it: NULs and lone surrogates, datetimes whose UTC
value leaves years 1-9999, numbers and strings where booleans and datetimes belong, JSON nested
far too deep, integers thousands of digits long, non-finite numbers, bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from config.settings import Settings
from integrations.payments.signing import stripe_signature
from store.db import get_database
from store.keys import IssuedKey
from store.models import AuditEvent, Job, ProviderEvent
from tests.api.conftest import auth

EXAMPLES = 250

# --- generators ------------------------------------------------------------------------------

nul_text = st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5))
surrogate_text = st.builds(
    lambda a, s: f"{a}{s}", st.text(max_size=5), st.characters(categories=["Cs"])
)
hostile_text = st.one_of(
    st.text(max_size=30),
    nul_text,
    surrogate_text,
    st.sampled_from(["", " ", "payments.stripe.refund", "data.sandbox.fetch_rates", "x" * 300]),
)
offsets = st.sampled_from(["-14:00", "+14:00", "Z", "+00:00", "-23:59", "+23:59", ""])
edge_datetimes = st.builds(
    lambda date, off: f"{date}T{'23:59:59' if date.startswith('9999') else '00:00:00'}{off}",
    st.sampled_from(["9999-12-31", "0001-01-01", "2026-11-29", "1970-01-01"]),
    offsets,
)
hostile_datetime = st.one_of(
    edge_datetimes,
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["0", "0.5", "1e308", "-1", "2026-11-29", "now", "P1D"]),
    hostile_text,
)
huge_int = st.integers(min_value=300, max_value=6000).map(lambda n: int("9" * min(n, 4000)))
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_int,
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
hostile_json = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=12,
)
hostile_bool = st.one_of(
    st.booleans(), st.integers(-1, 2), st.sampled_from(["no", "off", "yes", "true", "0", ""])
)


def as_url(text: str) -> str:
    """Percent-encoded UTF-8 of any string, lone surrogates included (as a careless client)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def encode(document: Any) -> bytes:
    """JSON as a careless client writes it: NaN/Infinity tokens, surrogates as escapes."""
    return json.dumps(document, allow_nan=True).encode()


@st.composite
def raw_bodies(draw: st.DrawFn, document: Any) -> bytes:
    """The document's bytes, or a broken variant: deeply nested, not UTF-8, a 5,000-digit int."""
    kind = draw(st.sampled_from(["as-is", "as-is", "as-is", "deep", "bytes", "digits"]))
    if kind == "deep":
        depth = draw(st.integers(min_value=30, max_value=5000))
        return b'{"type": "x", "payload": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bytes":
        return encode(document)[:-1] + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3"]))
    if kind == "digits":
        return b'{"type": "x", "payload": {"amount": ' + b"7" * 5000 + b"}}"
    return encode(document)


def job_body(draw: st.DrawFn) -> dict[str, Any]:
    """A submit body with hostile values in some of its fields."""
    body: dict[str, Any] = {
        "type": draw(
            st.one_of(
                hostile_text,
                st.sampled_from(
                    [
                        "data.sandbox.fetch_rates",
                        "payments.stripe.refund",
                        "payments.sandbox.charge",
                    ]
                ),
            )
        ),
        "payload": draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(
                        ["base", "reference", "amount", "currency", "payment_method", "description"]
                    ),
                    hostile_json,
                    max_size=4,
                ),
                hostile_json,
            )
        ),
    }
    if draw(st.booleans()):
        body["run_at"] = draw(hostile_datetime)
    if draw(st.booleans()):
        body["retry"] = draw(
            st.one_of(
                hostile_json,
                st.dictionaries(
                    st.sampled_from(["max_attempts", "base_s", "cap_s", "max_age_s"]),
                    json_leaf,
                    max_size=2,
                ),
            )
        )
    return body


@st.composite
def api_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], dict[str, str], bytes | None]:
    """(method, path, query, extra headers, body) for any route, hostile in its fields."""
    route = draw(
        st.sampled_from(
            ["submit", "batch", "list", "read", "cancel", "retry", "replay", "audit", "stripe"]
        )
    )
    headers: dict[str, str] = {}
    any_id = draw(st.one_of(hostile_text, st.uuids().map(str)))
    path_id = as_url(any_id)
    if route == "submit":
        if draw(st.booleans()):
            headers["Idempotency-Key"] = draw(
                st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
            )
        query = {"wait": draw(st.sampled_from(["0", "0.05", "-1", "nan", "1e400", "x"]))}
        return "POST", "/v1/jobs", query, headers, draw(raw_bodies(job_body(draw)))
    if route == "batch":
        jobs = [job_body(draw) for _ in range(draw(st.integers(0, 3)))]
        return "POST", "/v1/jobs/batch", {}, headers, draw(raw_bodies({"jobs": jobs}))
    if route == "list":
        names = ["type", "error_class", "created_after", "created_before", "cursor", "state"]
        query = {
            name: draw(st.one_of(hostile_text, hostile_datetime.map(str)))
            for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        }
        if draw(st.booleans()):
            query["limit"] = draw(st.sampled_from(["0", "1", "10**9", "1e3", "-5", "99999999999"]))
        return "GET", "/v1/jobs", query, headers, None
    if route == "read":
        query = {"wait": draw(st.sampled_from(["0", "0.05", "31", "-1", "nan", "inf"]))}
        return "GET", f"/v1/jobs/{path_id}", query, headers, None
    if route in ("cancel", "retry"):
        return "POST", f"/v1/jobs/{path_id}/{route}", {}, headers, None
    if route == "replay":
        flt = {
            name: draw(hostile_datetime if name.startswith("created") else hostile_text)
            for name in draw(
                st.lists(
                    st.sampled_from(["type", "error_class", "created_after", "created_before"]),
                    max_size=3,
                    unique=True,
                )
            )
        }
        if draw(st.booleans()):
            flt["states"] = draw(st.one_of(hostile_json, st.just(["dead", "failed"])))
        body = {"filter": flt, "dry_run": draw(hostile_bool), "limit": draw(json_leaf)}
        return "POST", "/v1/jobs/replay", {}, headers, draw(raw_bodies(body))
    if route == "audit":
        limit = draw(st.one_of(hostile_text, st.integers().map(str)))
        return "GET", "/v1/audit-events", {"limit": limit}, headers, None
    event = {
        "id": draw(hostile_text),
        "type": draw(st.sampled_from(["payment_intent.succeeded", "charge.refunded"])),
        "data": {"object": draw(hostile_json)},
    }
    return "POST", "/v1/providers/stripe/webhooks", {}, {"x-sign": "1"}, draw(raw_bodies(event))


def written(settings: Settings) -> tuple[int, int, int]:
    """How many jobs, provider events and audit rows exist."""
    with get_database(settings).session() as session:
        return (
            session.scalar(select(func.count()).select_from(Job)) or 0,
            session.scalar(select(func.count()).select_from(ProviderEvent)) or 0,
            session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def test_no_field_value_makes_the_api_answer_5xx_or_write_on_refusal(
    client: TestClient, settings: Settings, tenant_key: IssuedKey
) -> None:
    # Given the API on this database, and a tenant
    secret = settings.stripe_webhook_secret.get_secret_value()

    @hsettings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=api_requests())
    def check(request: tuple[str, str, dict[str, Any], dict[str, str], bytes | None]) -> None:
        method, path, query, headers, body = request
        headers = {**headers, **auth(tenant_key)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if headers.pop("x-sign", None):
            headers["Stripe-Signature"] = stripe_signature(body or b"", secret, int(time.time()))
        before = written(settings)
        # When any such request is sent (the query encoded by hand: surrogates go out as bytes)
        if query:
            path += "?" + "&".join(f"{name}={as_url(value)}" for name, value in query.items())
        response = client.request(method, path, headers=headers, content=body)
        # Then it is never a server error, errors have the one shape, and a refusal wrote nothing
        assert response.status_code < 500, (request, response.text)
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, response.text
            assert written(settings) == before, (request, response.text)

    check()
