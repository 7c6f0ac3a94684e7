"""Every route the app serves checks its parameters and body the one way (api/jsonbody.py)."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.jsonbody import JsonBodyRoute


def test_every_route_of_the_app_is_a_json_body_route(client: TestClient) -> None:
    # Given the app as served / When its routes are listed, routers included
    routes = [
        context.original_route
        for context in iter_route_contexts(client.app.router.routes)  # type: ignore[attr-defined]
        if isinstance(context.original_route, APIRoute)
    ]
    # Then each one is a JsonBodyRoute: a new router without it fails here, not in production
    plain = sorted(r.path for r in routes if not isinstance(r, JsonBodyRoute))
    assert routes and plain == []


def test_the_ops_console_form_posts_stay_form_encoded(client: TestClient) -> None:
    # Given the console's replay form, posted form-encoded without a key
    response = client.post(
        "/ops/replay",
        content=b"type=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # Then the route class leaves the form to its handler (it asks for a key, not for JSON)
    assert response.status_code == 401, response.text
