"""Who may open the console: an operator or admin API key, sent without JavaScript.

A browser sends the key as the password of HTTP basic auth (any user name), prompted by the
401's challenge; scripts may send `Authorization: Bearer <key>`. A key of the tenant role gets
403. Forms carry a CSRF token derived from the key's hash, and cross-site POSTs (by
`Sec-Fetch-Site`) are refused: browsers resend basic credentials to any site's form.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.credentials import presented_secret
from api.deps import DatabaseDep, Principal, principal_for_secret
from api.errors import ApiError
from store.keys import hash_key

CHALLENGE = {"WWW-Authenticate": 'Basic realm="conveyor-ops", charset="UTF-8"'}


def csrf_token(secret: str) -> str:
    """The form token of a console session: derived from the key's hash, never the key."""
    return hashlib.sha256(f"conveyor-ops-csrf:{hash_key(secret)}".encode()).hexdigest()[:32]


async def console_operator(request: Request, db: DatabaseDep) -> Principal:
    """The operator behind the request, or 401 (with a basic-auth challenge) / 403."""
    secret = presented_secret(request.headers.get("Authorization", ""))
    if secret is None:
        raise ApiError(
            401, "unauthorized", "the ops console needs an operator API key", headers=CHALLENGE
        )
    try:
        principal = await principal_for_secret(request, db, secret)
    except ApiError as exc:
        if exc.status != 401:
            raise  # 429 too_many_auth_failures keeps its Retry-After, and asks for no password
        raise ApiError(exc.status, exc.code, exc.message, headers=CHALLENGE) from None
    if not principal.is_operator:
        raise ApiError(403, "forbidden", "the ops console needs an operator or admin API key")
    request.state.csrf = csrf_token(secret)
    return principal


OperatorConsole = Annotated[Principal, Depends(console_operator)]


def check_form(request: Request, form: dict[str, str]) -> None:
    """Refuse a POST from another site or without this session's CSRF token (403)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise ApiError(403, "forbidden", "cross-site form posts are refused")
    expected: str = request.state.csrf
    if not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
        raise ApiError(403, "forbidden", "missing or stale form token: reload the page")
