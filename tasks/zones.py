"""Which time-zone names are canonical IANA zones, and the canonical name behind an alias.

tzdata lists its aliases (the `backward` file: `US/Pacific`, `Zulu`, `GMT+0`, …) as links,
lines `L <target> <alias>` of `tzdata.zi`, read here from the zoneinfo tree Python itself uses
(`zoneinfo.TZPATH`). Debian builds that file with `backzone`, which keeps a few names as zones
that IANA made links in 2024b (NEWS: CET, EST, … and the POSIX-rule names such as EST5EDT);
those links are added from the table below so every host answers alike. `UTC` stays accepted:
it is the default and what people mean by it is never in doubt.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from pathlib import Path

KEPT = frozenset({"UTC"})

# tzdata 2024b made these links (its NEWS); older or backzone builds still ship them as zones.
LINKS_2024B = {
    "CET": "Europe/Brussels",
    "CST6CDT": "America/Chicago",
    "EET": "Europe/Athens",
    "EST": "America/Panama",
    "EST5EDT": "America/New_York",
    "HST": "Pacific/Honolulu",
    "MET": "Europe/Brussels",
    "MST": "America/Phoenix",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "WET": "Europe/Lisbon",
}


@cache
def links() -> dict[str, str]:
    """Alias -> canonical zone name, from the host's tzdata.zi and the 2024b table."""
    found = dict(LINKS_2024B)
    for root in zoneinfo.TZPATH:
        path = Path(root) / "tzdata.zi"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "L":
                    found[parts[2]] = parts[1]
            break
    for name in KEPT:
        found.pop(name, None)
    return found


def canonical(name: str) -> str | None:
    """The canonical zone `name` is an alias of (following chains), or None if it is none."""
    table = links()
    target = table.get(name)
    seen = {name}
    while target is not None and target in table and target not in seen:
        seen.add(target)
        target = table[target]
    return target
