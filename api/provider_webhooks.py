"""`/v1/providers/{stripe,adyen}/webhooks`: signed provider events, kept once, applied later.

Providers cannot send our API keys, so these routes are authenticated by the provider's
signature over the raw body instead. A request that fails it writes nothing. A good one is
committed (deduplicated on the provider's event id), then its row id is published; the answer
goes back at once, with no provider call inline.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import PlainTextResponse

from api.deps import DatabaseDep, SettingsDep
from api.errors import ApiError
from api.jsonbody import JsonBodyRoute, MalformedJsonError, first_unstorable, parse_json
from api.openapi import error_responses
from config.redaction import redact_value
from config.settings import Settings
from integrations.payments.signing import SignatureError, verify_adyen_item, verify_stripe
from store.db import Database
from store.provider_events import record_event
from tasks.provider_events import APPLY_EVENT_QUEUE, APPLY_EVENT_TASK
from tasks.publish import producer_app, publish

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/providers", tags=["provider webhooks"], route_class=JsonBodyRoute)

# Column widths of provider_events; a longer value is a malformed event, not a database error.
EVENT_ID_MAX = 255
EVENT_TYPE_MAX = 100
REFERENCE_MAX = 255

ADYEN_ACCEPTED = "[accepted]"
# Provider events nest deeper than our own bodies (expanded objects), never this deep.
WEBHOOK_MAX_DEPTH = 64


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: signatures cover these bytes, not a re-serialised JSON."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def _invalid_signature(exc: SignatureError, details: Any = None) -> ApiError:
    return ApiError(400, "invalid_signature", str(exc), details)


def _malformed(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "malformed_event", message, details)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = parse_json(body, max_depth=WEBHOOK_MAX_DEPTH)
    except MalformedJsonError:  # not UTF-8 JSON, too deep, a number out of range
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _malformed("the event is not a JSON object")
    if first_unstorable(parsed, []) is not None:
        raise _malformed("the event holds text with a NUL or a lone surrogate")
    return parsed


def _optional(value: Any, name: str, max_length: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise _malformed(f"the event's {name} is not a string of at most {max_length} characters")
    return value


def _required(value: Any, name: str, max_length: int) -> str:
    text = _optional(value, name, max_length)
    if text is None:
        raise _malformed(f"the event has no {name}")
    return text


def _store_and_publish(
    db: Database,
    settings: Settings,
    provider: str,
    event_id: str,
    event_type: str,
    payment_reference: str | None,
    payload: dict[str, Any],
) -> bool:
    """Commit the event, then publish its row id; False when it was a replay."""
    # Stored redacted (card numbers, CVCs, secrets): applying an event needs ids, not those.
    row_id = record_event(
        db, provider, event_id, event_type, payment_reference, redact_value(payload)
    )
    if row_id is None:
        log.info("provider_event.duplicate", provider=provider, provider_event_id=event_id)
        return False
    # Published after the commit. If the broker is down the provider still gets its 2xx (it
    # would otherwise resend an event we hold): the row keeps processed_at NULL, and the sweep
    # applies such rows (tasks.maintenance.apply_stranded_events).
    publish(producer_app(settings), row_id, APPLY_EVENT_TASK, APPLY_EVENT_QUEUE)
    return True


def _stripe_reference(event_type: str, obj: dict[str, Any]) -> str | None:
    if event_type.startswith("payment_intent."):
        value = obj.get("id")
    elif event_type.startswith(("charge.", "refund.")):
        value = obj.get("payment_intent")
        if isinstance(value, dict):  # expanded
            value = value.get("id")
    else:
        return None
    return _optional(value, "payment reference", REFERENCE_MAX)


@router.post(
    "/stripe/webhooks",
    summary="Receive a signed Stripe event",
    responses=error_responses(400, 413, 503),
)
def stripe_webhook(
    body: RawBody,
    db: DatabaseDep,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, bool]:
    """Verify `Stripe-Signature` over the raw body, keep the event once, publish it."""
    try:
        verify_stripe(body, stripe_signature, settings.stripe_webhook_secret.get_secret_value())
    except SignatureError as exc:
        raise _invalid_signature(exc) from None
    event = _json_object(body)
    event_id = _required(event.get("id"), "id", EVENT_ID_MAX)
    event_type = _required(event.get("type"), "type", EVENT_TYPE_MAX)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise _malformed("a Stripe event needs a data.object")
    reference = _stripe_reference(event_type, obj)
    created = _store_and_publish(db, settings, "stripe", event_id, event_type, reference, event)
    return {"received": True, "duplicate": not created}


def _adyen_items(notification: dict[str, Any]) -> list[dict[str, Any]]:
    wrapped = notification.get("notificationItems")
    if not isinstance(wrapped, list) or not wrapped:
        raise _malformed("an Adyen notification needs a non-empty notificationItems list")
    items: list[dict[str, Any]] = []
    for index, wrapper in enumerate(wrapped):
        item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(item, dict):
            raise _malformed("a notification item has no NotificationRequestItem", {"item": index})
        items.append(item)
    return items


def _adyen_success(value: Any, index: int) -> str:
    if isinstance(value, bool):  # Adyen sends a string; a JSON boolean means the same
        return "true" if value else "false"
    if value not in ("true", "false"):
        raise _malformed("success is neither 'true' nor 'false'", {"item": index})
    return str(value)


@router.post(
    "/adyen/webhooks",
    summary="Receive signed Adyen notifications",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"example": ADYEN_ACCEPTED}}},
        **error_responses(400, 413, 503),
    },
)
def adyen_webhook(body: RawBody, db: DatabaseDep, settings: SettingsDep) -> PlainTextResponse:
    """Verify every item's HMAC, keep each item once, publish the new ones; `[accepted]`."""
    items = _adyen_items(_json_object(body))
    key = settings.adyen_hmac_key.get_secret_value()
    # All items are checked before any is stored: one bad item rejects the whole batch.
    events: list[tuple[str, str, str | None, dict[str, Any]]] = []
    for index, item in enumerate(items):
        try:
            verify_adyen_item(item, key)
        except SignatureError as exc:
            raise _invalid_signature(exc, {"item": index}) from None
        psp = _required(item.get("pspReference"), "pspReference", REFERENCE_MAX)
        code = _required(item.get("eventCode"), "eventCode", EVENT_TYPE_MAX)
        original = _optional(item.get("originalReference"), "originalReference", REFERENCE_MAX)
        event_id = f"{psp}:{code}:{_adyen_success(item.get('success'), index)}"
        if len(event_id) > EVENT_ID_MAX:
            raise _malformed("the notification item's identity is too long", {"item": index})
        events.append((event_id, code, original or psp, item))
    for event_id, code, reference, item in events:
        _store_and_publish(db, settings, "adyen", event_id, code, reference, item)
    return PlainTextResponse(ADYEN_ACCEPTED)
