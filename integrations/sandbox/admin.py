"""The sandbox's own endpoints under `/_sandbox/`: stats, reset, faults, the payment book."""

from __future__ import annotations

import json
import math
from typing import Any

from integrations.sandbox import adyen_api, stripe_api
from integrations.sandbox.arrivals import DEFAULT_WINDOW_S, MAX_WINDOW_S
from integrations.sandbox.errors import invalid_request
from integrations.sandbox.faults import MAX_DELAY_MS, fault_from_json, is_delay
from integrations.sandbox.outage import Outage, outage_from_json
from integrations.sandbox.stripe_params import MAX_AMOUNT
from integrations.sandbox.wire import Backend, Reply, Request

MAKERS = {"stripe": stripe_api.admin_intent, "adyen": adyen_api.admin_payment}
# The longest a provider may be told to keep idempotency keys, via /_sandbox/faults.
MAX_RETENTION_S = 31 * 86400.0


def get_stats(server: Backend, request: Request) -> Reply:
    """Counters, effects, keys and the busiest `?window=` seconds per path since reset."""
    return Reply(200, server.state.stats(_window_s(request.query)))


def post_reset(server: Backend, request: Request) -> Reply:
    """Forget all requests, keys, effects, payments, faults and any outage."""
    server.state.reset()
    return Reply(200, {"status": "reset"})


def post_faults(server: Backend, request: Request) -> Reply:
    """Replace the fault script and, optionally, latency, outage and key retention."""
    body = _body(request.raw)
    if not isinstance(body, dict) or not isinstance(body.get("script", []), list):
        raise invalid_request(
            "invalid_body", 'Send {"script": [spec, ...], "latency_ms": N, "outage": {...}}.'
        )
    try:
        script = [fault_from_json(spec) for spec in body.get("script", [])]
    except ValueError as exc:
        raise invalid_request("invalid_fault", str(exc), "script") from exc
    latency_ms = body.get("latency_ms")
    if latency_ms is not None and not is_delay(latency_ms):
        raise invalid_request("parameter_invalid", f"0 to {MAX_DELAY_MS} ms.", "latency_ms")
    state = server.state
    # Absent leaves a running outage alone; null ends it now.
    if "outage" in body:
        state.set_outage(_outage(body["outage"], request.arrived_at))
    if "key_retention_s" in body:
        state.set_retention(_retention(body["key_retention_s"]))
    length = state.set_script(script, latency_ms)
    return Reply(
        200,
        {
            "script_length": length,
            "latency_ms": state.latency_ms,
            "outage_remaining_s": state.outage_remaining_s(),
            "key_retention_s": state.retention_s(),
        },
    )


def list_payments(server: Backend, request: Request) -> Reply:
    """GET /_sandbox/payments: every payment in brief, id → provider, status and amounts."""
    return Reply(200, {"payments": server.state.book.summary()})


def create_payment(server: Backend, request: Request) -> Reply:
    """POST /_sandbox/payments: a captured payment made behind Conveyor's back.

    It simulates "a charge the DB missed" for reconciliation tests. The effect is counted under
    `metadata.conveyor_key` when there is one, as if that key's request had made it.
    """
    body = _body(request.raw)
    if not isinstance(body, dict):
        raise invalid_request("invalid_body", "The request body must be a JSON object.")
    provider = body.get("provider")
    if provider not in MAKERS:
        raise invalid_request("parameter_invalid", "provider is stripe or adyen.", "provider")
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise invalid_request("parameter_invalid_integer", "amount in minor units.", "amount")
    currency = body.get("currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise invalid_request("parameter_invalid", "currency must be 3 letters.", "currency")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise invalid_request("parameter_invalid", "metadata maps names to strings.", "metadata")
    made = MAKERS[provider](server.state.book, amount, currency.lower(), dict(metadata))
    if "conveyor_key" in metadata:
        server.state.add_effect(metadata["conveyor_key"])
    return Reply(200, made)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise invalid_request("invalid_json", f"The body is not valid JSON: {exc}") from exc


def _retention(spec: object) -> dict[str, float]:
    """`{"stripe": 2.0, "adyen": 2.0}`: seconds each provider keeps idempotency keys."""
    if not isinstance(spec, dict) or not set(spec) <= {"stripe", "adyen"}:
        raise invalid_request(
            "invalid_fault", 'key_retention_s is {"stripe": s, "adyen": s}.', "key_retention_s"
        )
    for value in spec.values():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0 < value <= MAX_RETENTION_S:
            raise invalid_request(
                "invalid_fault",
                f"key retention is seconds above 0, at most {MAX_RETENTION_S:g}.",
                "key_retention_s",
            )
    return {name: float(value) for name, value in spec.items()}


def _outage(spec: object, starts_at: float) -> Outage | None:
    if spec is None:
        return None
    try:
        return outage_from_json(spec, starts_at)
    except ValueError as exc:
        raise invalid_request("invalid_fault", str(exc), "outage") from exc


def _window_s(query: dict[str, list[str]]) -> float:
    text = query.get("window", [str(DEFAULT_WINDOW_S)])[-1]
    try:
        window_s = float(text)
    except ValueError:
        window_s = math.nan
    # NaN fails the comparison, so "nan" is refused with the rest.
    if not 0 < window_s <= MAX_WINDOW_S:
        raise invalid_request(
            "parameter_invalid", f"window is seconds above 0, at most {MAX_WINDOW_S:g}.", "window"
        )
    return window_s
