"""Routes: a method and a path pattern such as `/v1/payment_intents/{id}/capture` → an endpoint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from integrations.sandbox.errors import ApiError

E = TypeVar("E")
# A `{name}` segment matches one non-empty path segment.
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Route(Generic[E]):
    """One endpoint; a literal route listed before a pattern that also matches it wins."""

    method: str
    pattern: str
    endpoint: E
    # Stripe saves a 500 under the key once execution began, so an injected 500 is saved too.
    saves_failures: bool = False
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = _PARAM.split(self.pattern)
        # split() alternates literal text and parameter names.
        source = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        object.__setattr__(self, "regex", re.compile(f"^{source}$"))


@dataclass(frozen=True)
class Match(Generic[E]):
    """The route a request reached and the values of its path parameters."""

    route: Route[E]
    params: dict[str, str]


def match(routes: Sequence[Route[E]], method: str, path: str) -> Match[E]:
    """The first route for `method` and `path`; 404 for an unknown path, 405 for another method."""
    allowed: list[str] = []
    for route in routes:
        found = route.regex.match(path)
        if found is None:
            continue
        if route.method == method:
            return Match(route, found.groupdict())
        if route.method not in allowed:
            allowed.append(route.method)
    if not allowed:
        raise ApiError(404, "invalid_request_error", "resource_missing", f"No such path: {path}")
    methods = ", ".join(allowed)
    raise ApiError(
        405,
        "invalid_request_error",
        "method_not_allowed",
        f"{path} accepts {methods} only.",
        headers={"Allow": methods},
    )
