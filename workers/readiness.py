"""Waiting, with a deadline, for a process to answer over HTTP."""

from __future__ import annotations

import time

import requests

POLL_S = 0.2


class NotReady(TimeoutError):
    """Something did not become ready before its deadline."""


def wait_for_http(
    url: str, what: str, timeout_s: float = 30.0, auth: tuple[str, str] | None = None
) -> None:
    """Poll `url` until it answers below 500, or raise NotReady naming `what` it waited for."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2, auth=auth)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(POLL_S)
    raise NotReady(f"{what} at {url} not ready after {timeout_s:.0f}s ({last})")
