"""What an endpoint receives and answers, and what the provider APIs may reach on the server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from integrations.sandbox.faults import Fault
from integrations.sandbox.state import SandboxState


@dataclass(frozen=True)
class Request:
    """What an endpoint needs from one HTTP request."""

    query: dict[str, list[str]]
    raw: bytes
    latency_s: float = 0.0
    arrived_at: float = 0.0  # monotonic, once the request line and headers were parsed
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    params: Mapping[str, str] = field(default_factory=dict)  # taken from the path pattern
    method: str = "GET"
    path: str = ""
    # An injected failure the endpoint answers, and saves under the key, in place of the work.
    fault: Fault | None = None

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    """A JSON response to send; `drop` closes the connection without any response instead."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    drip_ms: int = 0  # send the body one byte every drip_ms (a slow-drip fault)


DROP = Reply(drop=True)


@dataclass(frozen=True)
class ProviderKeys:
    """The API keys the Stripe-like and Adyen-like endpoints accept."""

    stripe: frozenset[str]
    adyen: str


class Backend(Protocol):
    """The server as the provider APIs see it: its memory and its keys."""

    state: SandboxState
    keys: ProviderKeys
