"""What was sent and received during one attempt, redacted, for the attempt history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Exchange:
    """One HTTP call as it may be stored: no secrets, no card numbers, bounded size."""

    request: str
    response: str
    status: int | None


_current: ContextVar[list[Exchange] | None] = ContextVar("conveyor_exchanges", default=None)


@contextmanager
def recording() -> Iterator[list[Exchange]]:
    """Collect the exchanges made inside the block (per thread / task context)."""
    exchanges: list[Exchange] = []
    token = _current.set(exchanges)
    try:
        yield exchanges
    finally:
        _current.reset(token)


def record(exchange: Exchange) -> None:
    """Keep an exchange if someone is recording."""
    exchanges = _current.get()
    if exchanges is not None:
        exchanges.append(exchange)
