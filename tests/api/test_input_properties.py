"""Property: whatever a client puts in any string, datetime or JSON field, query or path
parameter of any route the app serves, the API never answers 5xx, and a refused request writes
nothing in any table (SQLite and PostgreSQL). The routes are read from the app (`routes_of`), so
a new route is covered without touching this file.

The generators are the kinds that once broke it: NULs and lone surrogates, datetimes whose UTC
value leaves years 1-9999, numbers and strings where booleans and datetimes belong, JSON nested
far too deep, integers thousands of digits long, non-finite numbers, bytes that are not UTF-8.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from config.settings import Settings
from integrations.payments.signing import stripe_signature
from store.db import get_database
from store.keys import IssuedKey, create_api_key
from store.models import Base
from store.roles import Role
from tests.api.conftest import auth

EXAMPLES = 300
PUBLIC = "93.184.216.34"

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


# --- the routes, as the app declares them ----------------------------------------------------

Schema = dict[str, Any]
NUMERIC_QUERY = ["0", "1", "-5", "1e3", "nan", "inf", "1e400", "10**9", "99999999999", "true", ""]
# Query names no route declares but some read themselves (the ops console, `data.<field>`).
EXTRA_QUERY = ["tenant", "type", "error_class", "state", "limit", "cursor", "data.currency"]
# Values that get a request past validation, so the hostile ones beside them reach storage.
PLAUSIBLE: dict[str, list[Any]] = {
    "url": ["https://hooks.example/in", "http://8.8.8.8:0/x", "https://api.example/items"],
    "tenant": ["t", " t ", "4111111111111111"],
    "name": ["n", "s1"],
    "since": ["2026-01-01T00:00:00Z"],
    "until": ["2026-02-01T00:00:00Z"],
    "type": ["data.sandbox.fetch_rates", "payments.sandbox.charge"],
    "cron": ["* * * * *"],
    "value": ["v"],
    "provider": ["fx", "sandbox", "stripe", "adyen"],
    "resource": ["reference_rates"],
    "action": ["cancel", "retry"],
    "event_types": [["job.succeeded"]],
}


@dataclass(frozen=True)
class RouteShape:
    """One route of the app: how it is called and what it reads."""

    method: str
    path: str  # with {placeholders}
    query: dict[str, Schema]  # name -> JSON schema of the value
    body: Schema | None  # the resolved JSON schema of its JSON body, or None


def _resolve(spec: Schema, schema: Schema) -> Schema:
    """`schema` with a `$ref` (or the first `$ref` of an `anyOf`) resolved once."""
    for option in [schema, *schema.get("anyOf", [])]:
        ref = option.get("$ref")
        if ref:
            resolved: Schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            return resolved
    return schema


def routes_of(app: FastAPI) -> list[RouteShape]:
    """Every route the app serves, read from the app itself (a new route is covered at once):
    its query parameters and body from the OpenAPI document, or from the route when it is
    left out of the document (the ops console)."""
    spec = app.openapi()
    shapes = []
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path_format is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = spec["paths"].get(context.path_format, {}).get(method.lower())
            query: dict[str, Schema] = {}
            body: Schema | None = None
            if operation is not None:
                for param in operation.get("parameters", []):
                    if param["in"] == "query":
                        query[param["name"]] = _resolve(spec, param.get("schema", {}))
                content = operation.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    body = _resolve(spec, content["application/json"]["schema"])
            else:
                query = {name: {} for name in _query_names(route.dependant)}
            shapes.append(RouteShape(method, context.path_format, query, body))
    return shapes


def _query_names(dependant: Dependant) -> list[str]:
    names = [field.alias for field in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_names(sub)
    return names


def _types(schema: Schema) -> set[str]:
    options = [schema, *schema.get("anyOf", [])]
    return {str(o["type"]) for o in options if "type" in o} | {
        "date-time" for o in options if o.get("format") == "date-time"
    }


def value_for(name: str, schema: Schema) -> st.SearchStrategy[Any]:
    """A hostile JSON value for a body field of this name and schema, or a plausible one."""
    types = _types(schema)
    kinds: list[st.SearchStrategy[Any]] = [json_leaf, hostile_json]
    if "date-time" in types:
        kinds.append(hostile_datetime)
    if types & {"integer", "number"}:
        kinds.append(st.one_of(st.integers(), st.floats(), hostile_bool, st.just(2**70)))
    if "boolean" in types:
        kinds.append(hostile_bool)
    if "string" in types or "array" in types:
        kinds.append(hostile_text)
        kinds.append(st.lists(hostile_text, max_size=3))
    if name in PLAUSIBLE:
        kinds.append(st.sampled_from(PLAUSIBLE[name]))
        kinds.append(st.sampled_from(PLAUSIBLE[name]))
    return st.one_of(kinds)


def query_value(name: str, schema: Schema) -> st.SearchStrategy[str]:
    """A hostile query value: text with NULs and surrogates, edge datetimes, odd numbers."""
    numbers = [n for n in NUMERIC_QUERY if not (name == "wait" and n == "1")]
    options = [hostile_text, hostile_datetime.map(str), st.sampled_from(numbers)]
    if name == "cursor":
        options.append(st.sampled_from(FORGED_CURSORS))
    if name in PLAUSIBLE:
        options.append(st.sampled_from([str(v) for v in PLAUSIBLE[name]]))
    return st.one_of(options)


def _forged(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


FORGED_CURSORS = [
    _forged("[" * 3000 + "]" * 3000),
    _forged(["9999-12-31T23:59:59-14:00", 1]),
    _forged(["2026-01-01T00:00:00+00:00", 2**70]),
    _forged(["2026-01-01T00:00:00+00:00", str(uuid.uuid4())]),
    _forged(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),
]


@st.composite
def path_of(draw: st.DrawFn, template: str) -> str:
    """The route's path with every {placeholder} filled, hostile or plausible, URL-encoded."""
    path = template
    for name in PLACEHOLDER.findall(template):
        value = draw(
            st.one_of(
                hostile_text,
                st.uuids().map(str),
                st.sampled_from([str(v) for v in PLAUSIBLE.get(name, ["x"])]),
            )
        )
        path = path.replace("{" + name + "}", as_url(value) or "x")
    return path


PLACEHOLDER = re.compile(r"{([^}:]+)(?::[^}]*)?}")

Request = tuple[str, str, dict[str, str], dict[str, str], bytes | None]


@st.composite
def api_requests(draw: st.DrawFn, routes: list[RouteShape]) -> Request:
    """(method, path, query, extra headers, body) for any route, hostile in its fields."""
    route = draw(st.sampled_from(routes))
    headers: dict[str, str] = {}
    names = [*route.query, *EXTRA_QUERY]
    query = {
        name: draw(query_value(name, route.query.get(name, {})))
        for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    }
    if draw(st.booleans()):
        query.pop("wait", None)
    body: bytes | None = None
    if route.body is not None:
        if route.path == "/v1/jobs":
            document: Any = job_body(draw)
            if draw(st.booleans()):
                headers["Idempotency-Key"] = draw(
                    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
                )
        elif route.path == "/v1/jobs/batch":
            document = {"jobs": [job_body(draw) for _ in range(draw(st.integers(0, 3)))]}
        else:
            fields: dict[str, Schema] = route.body.get("properties", {})
            chosen = draw(st.lists(st.sampled_from(sorted(fields) or ["x"]), unique=True))
            document = {name: draw(value_for(name, fields.get(name, {}))) for name in chosen}
            if draw(st.integers(0, 9)) == 0:
                document = draw(hostile_json)
        body = draw(raw_bodies(document))
        headers["Content-Type"] = draw(
            st.sampled_from(
                ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", ""]
            )
        )
    if "/providers/stripe/" in route.path:
        headers["x-sign"] = "1"
    return route.method, draw(path_of(route.path)), query, headers, body


def written(settings: Settings) -> dict[str, int]:
    """How many rows every table holds."""
    with get_database(settings).session() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def admin_key(settings: Settings) -> IssuedKey:
    """An admin's key: every route answers it past authentication."""
    with get_database(settings).session() as session:
        return create_api_key(session, f"platform-{uuid.uuid4().hex[:6]}", "root", Role.ADMIN)


def test_the_generator_reaches_every_route_with_parameters_or_a_body(client: TestClient) -> None:
    # Given the app's routes as the property test reads them
    routes = routes_of(client.app)  # type: ignore[arg-type]
    served = {(r.method, r.path) for r in routes}
    # Then they include the routes issue 11 fixed and every one a new-user trial broke
    for expected in [
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs"),
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"),
        ("PUT", "/v1/data/sources/{name}"),
        ("GET", "/v1/data/{provider}/{resource}"),
        ("POST", "/v1/admin/keys"),
        ("POST", "/v1/schedules"),
        ("GET", "/ops/jobs"),
    ]:
        assert expected in served, sorted(served)
    # And the JSON bodies are read from the document, field by field
    bodies = {(r.method, r.path): r.body for r in routes if r.body is not None}
    assert "since" in bodies[("POST", "/v1/webhook-endpoints/{endpoint_id}/replay")]["properties"]


@pytest.mark.slow
def test_no_field_value_makes_the_api_answer_5xx_or_write_on_refusal(
    client: TestClient, settings: Settings, admin_key: IssuedKey
) -> None:
    # Given the API on this database, every route it serves, and an admin's key (past every gate)
    secret = settings.stripe_webhook_secret.get_secret_value()
    client.app.state.webhook_resolver = lambda host, port: [PUBLIC]  # type: ignore[attr-defined]
    routes = routes_of(client.app)  # type: ignore[arg-type]

    @hsettings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=api_requests(routes))
    def check(request: Request) -> None:
        method, path, query, headers, body = request
        headers = {**headers, **auth(admin_key)}
        if not headers.get("Content-Type"):
            headers.pop("Content-Type", None)
        if headers.pop("x-sign", None):
            headers["Stripe-Signature"] = stripe_signature(body or b"", secret, int(time.time()))
        before = written(settings)
        # When any such request is sent (the query encoded by hand: surrogates go out as bytes)
        if query:
            path += "?" + "&".join(
                f"{as_url(name)}={as_url(value)}" for name, value in query.items()
            )
        response = client.request(method, path, headers=headers, content=body)
        # Then it is never a server error, errors have the one shape, and a refusal wrote nothing
        assert response.status_code < 500, (request, response.text)
        if response.status_code >= 400 and response.headers["content-type"].startswith(
            "application/json"
        ):
            assert set(response.json()) == {"error"}, response.text
        if response.status_code >= 400:
            assert written(settings) == before, (request, response.text)

    check()
