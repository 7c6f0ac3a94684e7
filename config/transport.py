"""kombu's Redis transport, with a client kept per channel and malformed messages dropped.

One client per channel: kombu's Redis channel builds a new `redis.Redis` around its shared
connection pool for every publish, ack and unacked-index update; building one costs more CPU
than the command it sends (about a tenth of a no-op job's worker time). The client holds no
connection of its own and is safe to share between threads, so the channel keeps one per pool
and builds a new one only when kombu replaces the pool (after a connection error).

Closing after the connection dropped: see `Channel._connparams`.

Malformed messages: kombu decodes the envelope of each popped list item (`loads`) and builds a
`Message` from it without guarding either step, so one item that is not JSON (`garbage`), or JSON
of another shape (`[1]`, `{}`), or a body that does not decode, raises out of the consumer and
Celery stops the worker ("Unrecoverable error: JSONDecodeError"). Celery's task strategy then
unpacks a task message's JSON body as `(args, kwargs, embed)` (message protocol 2) without a
guard either, so a task message whose body is JSON of another shape (`{"a": 1}`) stops it with
"Unrecoverable error: ValueError", and being redelivered, stops every restart. Here such an item
is dropped and logged with its queue (`broker.message_dropped`); a well-formed message Celery can
refuse on its own (an unknown task, a body that is not JSON) is still Celery's to log and ack.
"""

from __future__ import annotations

import base64
import binascii
import json
from queue import Empty
from typing import Any

import structlog
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

TRANSPORT = "config.transport:Transport"

log = structlog.get_logger(__name__)

# What decoding an envelope or building a Message from one raises on foreign input.
_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, binascii.Error)


class MalformedMessage(ValueError):
    """A broker list item that is not a kombu message envelope."""


def _decode_envelope(item: bytes | str) -> dict[str, Any]:
    """The envelope dict of one popped list item; MalformedMessage when it is not one."""
    try:
        envelope = loads(bytes_to_str(item))  # type: ignore[no-untyped-call]
    except _DECODE_ERRORS as exc:
        raise MalformedMessage(f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("properties"), dict):
        raise MalformedMessage(f"not a message envelope (a JSON {type(envelope).__name__})")
    _check_task_body(envelope)
    return envelope


def _check_task_body(envelope: dict[str, Any]) -> None:
    """MalformedMessage when a protocol-2 task message's JSON body is not `[args, kwargs, embed]`.

    Only JSON task bodies are looked at: a body in another content type, or one that is not
    JSON at all, Celery refuses by itself without stopping.
    """
    headers = envelope.get("headers")
    if not isinstance(headers, dict) or "task" not in headers:
        return  # not a task message (a control reply), or protocol 1: Celery checks those
    if envelope.get("content-type") != "application/json":
        return
    raw = envelope.get("body")
    if not isinstance(raw, str | bytes):
        raise MalformedMessage(f"a task message whose body is a JSON {type(raw).__name__}")
    try:
        if envelope["properties"].get("body_encoding") == "base64":
            raw = base64.b64decode(raw, validate=True)
        body = json.loads(raw)
    except (*_DECODE_ERRORS, json.JSONDecodeError, RecursionError):
        return  # not JSON: Celery's own DecodeError path logs and acknowledges it
    if not (
        isinstance(body, list)
        and len(body) == 3
        and isinstance(body[0], list)
        and isinstance(body[1], dict)
        and isinstance(body[2], dict | None)
    ):
        raise MalformedMessage("a task message whose body is not [args, kwargs, embed]")


def _dropped(queue: str, exc: Exception, size: int | None) -> None:
    # The content is not logged: it is foreign input and may hold anything.
    log.error("broker.message_dropped", queue=queue, reason=str(exc), size_bytes=size)


class Message(virtual.Message):
    """kombu's message, refusing an envelope it cannot read with MalformedMessage."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
            raise MalformedMessage(f"not a message envelope (a {type(payload).__name__})")
        try:
            super().__init__(payload, channel=channel, **kwargs)  # type: ignore[no-untyped-call]
        except _DECODE_ERRORS as exc:
            raise MalformedMessage(f"unreadable envelope ({type(exc).__name__}: {exc})") from exc


class Channel(kombu_redis.Channel):
    """A Redis channel whose synchronous client is built once per connection pool."""

    Message = Message
    _kept_client: Any = None
    _saved_connparams: dict[bool, dict[str, Any]] | None = None

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # kombu reads host and port from the transport's Connection, which a closing consumer
        # has already detached; restoring the unacknowledged messages at close then fails with
        # "AttributeError: 'NoneType' object has no attribute 'hostname'" and the messages wait
        # for the visibility timeout. The parameters last used still name the same server.
        saved = self._saved_connparams or {}
        if self.connection.client is None and asynchronous in saved:
            return dict(saved[asynchronous])
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        self._saved_connparams = {**saved, asynchronous: dict(params)}
        return params

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        kept = self._kept_client
        if kept is None or kept.connection_pool is not pool:
            kept = self._kept_client = super()._create_client()  # type: ignore[no-untyped-call]
        return kept

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.7's `_brpop_read`, with the envelope decoded by `_decode_envelope`.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # Disconnect so that the next iteration reconnects.
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]  # type: ignore[no-untyped-call]
            self._queue_cycle.rotate(dest)
            try:
                envelope = _decode_envelope(item)
            except MalformedMessage as exc:
                _dropped(dest, exc, len(item))
                return True
            self.connection._deliver(envelope, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]

    def _get(self, queue: str, timeout: Any = None) -> Any:
        # The polling path (basic_get, consumers without an event loop) decodes with `loads` too.
        try:
            payload = super()._get(queue)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            _dropped(queue, MalformedMessage(f"not JSON ({type(exc).__name__})"), None)
            raise Empty() from exc
        if isinstance(payload, dict) and isinstance(payload.get("properties"), dict):
            try:
                _check_task_body(payload)
            except MalformedMessage as exc:
                _dropped(queue, exc, None)
                raise Empty() from exc
        return payload


class Transport(kombu_redis.Transport):
    """The Redis transport with `Channel` above; every `redis://` option works unchanged."""

    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        try:
            super()._deliver(message, queue)  # type: ignore[no-untyped-call]
        except MalformedMessage as exc:
            # Raised while building the Message, before it was tracked as unacked: dropped.
            _dropped(queue, exc, None)
