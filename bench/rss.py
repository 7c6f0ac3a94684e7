"""Resident memory of a process and its descendants, read from /proc/<pid>/status."""

from __future__ import annotations

from bench.cpu import PROC, tree_pids

KIB_PER_MIB = 1024


def _vm_rss_kib(pid: int) -> int:
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:  # the process ended between listing and reading
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a zombie or kernel thread has no VmRSS line


def tree_rss_mib(root: int) -> float:
    """VmRSS of `root` and its live descendants, summed, in MiB (shared pages count per process)."""
    return sum(_vm_rss_kib(pid) for pid in tree_pids(root)) / KIB_PER_MIB
