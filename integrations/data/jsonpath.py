"""A small JSON path: `$.data.items`, `meta.next`, `items[0].id`; `$` or "" is the document."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PATH = re.compile(r"^\$?(?:\.?[^.\[\]]+|\[\d+\])*$")


class PathMissing(LookupError):
    """The document has nothing at the path."""


def is_json_path(path: str) -> bool:
    """Whether `path` is a dotted path with optional `[index]` parts."""
    return bool(_PATH.match(path.strip()))


def resolve(document: Any, path: str) -> Any:
    """The value at `path`; raises PathMissing naming the first part that is absent."""
    value = document
    text = path.strip().removeprefix("$").removeprefix(".")
    for match in _TOKEN.finditer(text):
        name, index = match.groups()
        if name is not None and isinstance(value, dict) and name in value:
            value = value[name]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise PathMissing(f"nothing at {match.group(0)!r} of {path!r}")
    return value
