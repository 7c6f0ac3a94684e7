"""A worker that stops without being asked to exits non-zero, so any supervisor restarts it.

Celery logs an "Unrecoverable error" (a consumer that could not restart after the broker went
away, an exception kombu raised while closing) and then exits with status 0, which process
managers read as a clean, intended stop. Only a shutdown signal (SIGTERM, SIGINT, SIGQUIT: Celery
sends `worker_shutting_down` for each) makes a stop intended here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from celery.signals import worker_shutting_down

log = structlog.get_logger(__name__)

# sysexits.h EX_SOFTWARE: an internal error, not a usage or configuration one.
EXIT_UNASKED = 70

_asked = threading.Event()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_asked(**_: Any) -> None:
    _asked.set()


def run_worker(main: Callable[[], object]) -> int:
    """Run Celery's worker main; its exit status, or `EXIT_UNASKED` for a stop nobody asked for."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if code == 0 and not _asked.is_set():
        log.error("worker.stopped_unasked", exit_code=EXIT_UNASKED)
        return EXIT_UNASKED
    return code
