"""Stripe's form encoding read back: `metadata[k]=v` → a dict, `expand[]=x` → a list."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from integrations.sandbox.errors import invalid_request

_BRACKETED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]]*)\]$")


def parse_form(raw: bytes) -> dict[str, Any]:
    """Flat `name=value` pairs, one level of `name[key]=value`, and `name[]=value` lists."""
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_request(
            "invalid_body", "Send an application/x-www-form-urlencoded body."
        ) from exc
    form: dict[str, Any] = {}
    for name, value in pairs:
        nested = _BRACKETED.match(name)
        if nested is None:
            form[name] = value
            continue
        outer, inner = nested.groups()
        if inner == "":
            form.setdefault(outer, [])
            if not isinstance(form[outer], list):
                raise invalid_request(
                    "parameter_invalid", f"{outer} mixes a list and a hash.", outer
                )
            form[outer].append(value)
        else:
            form.setdefault(outer, {})
            if not isinstance(form[outer], dict):
                raise invalid_request(
                    "parameter_invalid", f"{outer} mixes a list and a hash.", outer
                )
            form[outer][inner] = value
    return form


def check_known(form: dict[str, Any], known: frozenset[str]) -> None:
    """Refuse a parameter the endpoint does not know, as Stripe does."""
    for name in form:
        if name not in known:
            raise invalid_request("parameter_unknown", f"Received unknown parameter: {name}", name)
