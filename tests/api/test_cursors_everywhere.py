"""Every list that takes a `cursor` refuses one the API did not issue: `422 invalid_cursor`."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from store.keys import IssuedKey
from tests.api.conftest import auth, error_of

# Path parameters a cursor route needs to reach its handler (a registered data provider).
PATH_VALUES = {"provider": "http"}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def cursor_routes(client: TestClient) -> list[str]:
    """The path of every GET route of the app with a `cursor` query parameter, filled in."""
    found = []
    for context in iter_route_contexts(client.app.router.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, APIRoute) or "GET" not in (route.methods or set()):
            continue
        if any(p.name == "cursor" for p in route.dependant.query_params):
            found.append(PARAM.sub(lambda m: PATH_VALUES.get(m.group(1), "x"), route.path))
    return sorted(found)


def test_the_walk_finds_the_keyset_lists(client: TestClient) -> None:
    # Given the app as served / When its cursor routes are listed
    # Then the known keyset lists are among them (the walk below is not vacuous)
    assert {"/v1/jobs", "/v1/schedules", "/v1/data/http/x"} <= set(cursor_routes(client))


@pytest.mark.parametrize("cursor", ["abc", "a", "W10", "bmFtZQ", "x" * 600])
def test_every_route_with_a_cursor_refuses_one_it_did_not_issue(
    client: TestClient, tenant_key: IssuedKey, cursor: str
) -> None:
    # Given every GET route that takes a cursor, and a cursor none of them issued
    for path in cursor_routes(client):
        # When the list is asked for from there
        response = client.get(path, params={"cursor": cursor}, headers=auth(tenant_key))
        # Then 422 invalid_cursor points at the query parameter
        error = error_of(response, 422, "invalid_cursor")
        assert error["details"]["loc"] == ["query", "cursor"], path
