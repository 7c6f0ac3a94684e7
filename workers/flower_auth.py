"""Flower behind one exact user and password, read-only.

Flower's own `--basic_auth` / `FLOWER_BASIC_AUTH` is a tornado option with `multiple=True`: its
value is split on commas into a list of `user:password` strings and a request is let in when the
decoded `Authorization` matches any of them. A password `,secret` therefore becomes the entries
`admin:` and `secret` (an empty password, and no user at all, get in) and `pre,fix` lets `pre`
in. Conveyor never hands the password to that parser: `GatedFlower` checks every request itself
against the exact pair (RFC 7617: UTF-8, user-id without a colon, no control characters),
compared in constant time, before Flower routes it. Only `/healthcheck` ("OK", nothing else) is
open, for load balancers. Flower's control API (task apply/async-apply/send-task/revoke/abort,
worker pool and shutdown, rate limits) is off: every method but GET and HEAD answers 403 (but a
POST to `/tasks/datatable`, the read the Tasks page's table makes); ops actions go through
Conveyor's API and console, where they are audited.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

import tornado.web
from flower.app import Flower
from tornado import httputil

# Flower's own check compares `str`s with hmac.compare_digest, which raises on non-ASCII text: a
# request the gate admitted reaches Flower carrying this process's random ASCII pass instead.
INNER_USER = "conveyor-gate"
OPEN_PATHS = frozenset({"/healthcheck"})
READ_METHODS = frozenset({"GET", "HEAD"})
# Reads that Flower's pages make with POST: the Tasks page's DataTables loads its rows this way.
READ_POSTS = frozenset({"/tasks/datatable"})


class UnsafeCredentials(ValueError):
    """Flower credentials that cannot be passed in HTTP basic auth exactly."""


@dataclass(frozen=True)
class FlowerCredentials:
    """The one user and password Flower admits; validated on construction."""

    user: str
    password: str

    def __post_init__(self) -> None:
        problems = credential_problems(self.user, self.password)
        if problems:
            raise UnsafeCredentials("; ".join(problems))

    def __repr__(self) -> str:
        return f"FlowerCredentials(user={self.user!r}, password=***)"

    def admits(self, authorization: str | None) -> bool:
        """True when an `Authorization` header carries exactly this user and password."""
        presented = parse_basic(authorization)
        if presented is None:
            return False
        user, password = presented
        # Both compared, always, in constant time: no early exit says which one was wrong.
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def credential_problems(user: str, password: str) -> list[str]:
    """Why a user/password pair cannot be sent safely in basic auth (RFC 7617 §2); [] if fine."""
    problems: list[str] = []
    if not user:
        problems.append("CONVEYOR_FLOWER_USER is empty")
    if not password:
        problems.append("CONVEYOR_FLOWER_PASSWORD is empty")
    if ":" in user:
        problems.append("CONVEYOR_FLOWER_USER contains ':' (the user/password separator)")
    if _has_control(user) or _has_control(password):
        problems.append("the Flower user or password contains a control character")
    for name, value in (("USER", user), ("PASSWORD", password)):
        if value != unicodedata.normalize("NFC", value):
            problems.append(f"CONVEYOR_FLOWER_{name} is not NFC-normalised Unicode")
    return problems


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """`(user, password)` from `Basic <base64(user:password)>` (UTF-8), or None when malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


class _Refused(tornado.web.RequestHandler):
    """Answers a request the gate stopped: 401 with a challenge, or 403 for control calls."""

    def initialize(self, status: int) -> None:
        self.refusal = status

    def prepare(self) -> None:
        self.set_status(self.refusal)
        if self.refusal == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="conveyor-flower", charset="UTF-8"')
            self.finish("authentication required")
        else:
            self.finish("Flower's control API is disabled in Conveyor")

    def check_xsrf_cookie(self) -> None:
        # The refusal is answered in prepare(); an XSRF check must not turn it into a 403 page.
        return


class GatedFlower(Flower):  # type: ignore[misc]
    """Flower whose every request passes the exact-credentials gate before routing."""

    def __init__(self, credentials: FlowerCredentials, broker_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials
        self.real_broker_url = broker_url
        self.inner_pass = f"{INNER_USER}:{secrets.token_hex(16)}"
        self.options.basic_auth = [self.inner_pass]

    @property
    def broker_uri_with_password(self) -> str:
        """The `redis://` URL itself: Flower picks its Broker page's client by the URL's scheme,
        and Conveyor's transport class (`config.transport`) would hide it."""
        return self.real_broker_url

    @property
    def transport(self) -> str:
        """The broker's kind as Flower's Broker page expects it."""
        return "redis"

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        """Route only what the gate admits; everything else goes to `_Refused`."""
        prefix = "/" + (self.options.url_prefix or "").strip("/")
        path = (
            request.path[len(prefix) :] if request.path.startswith(prefix + "/") else request.path
        )
        refusal: int | None = None
        if path in OPEN_PATHS and request.method in READ_METHODS:
            pass
        elif not self.credentials.admits(request.headers.get("Authorization")):
            refusal = 401
        elif request.method not in READ_METHODS and not (
            request.method == "POST" and path in READ_POSTS
        ):
            refusal = 403
        else:
            inner = base64.b64encode(self.inner_pass.encode()).decode()
            request.headers["Authorization"] = f"Basic {inner}"
        if refusal is not None:
            return cast(
                tornado.web._HandlerDelegate,
                self.get_handler_delegate(request, _Refused, {"status": refusal}),
            )
        return cast(tornado.web._HandlerDelegate, super().find_handler(request, **kwargs))
