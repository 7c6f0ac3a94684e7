"""CPU time used by a process and its descendants, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields after the command name in /proc/<pid>/stat: state is [0], ppid [1], utime [11], stime [12].
PPID_FIELD, UTIME_FIELD, STIME_FIELD = 1, 11, 12


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant (their PIDs, root first)."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[PPID_FIELD])
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.extend(kids)
        frontier.extend(kids)
    return tree


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of `root` and every live descendant."""
    total_ticks = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            total_ticks += int(fields[UTIME_FIELD]) + int(fields[STIME_FIELD])
    return total_ticks / CLOCK_TICKS
