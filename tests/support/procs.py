"""Real processes for tests: the benchmark's helpers (free ports, named deadlines, stop by PID).

One implementation for both: tests may import `bench` (a product tool); `bench` never imports
test code.
"""

from __future__ import annotations

from bench.procs import ROOT, Proc, free_port, http_ok, python_argv, wait_until

__all__ = ["ROOT", "Proc", "free_port", "http_ok", "python_argv", "wait_until"]
