"""Process signals: fresh connections per child, logging everywhere, start-up heap frozen."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    after_setup_logger,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

from config.logging import configure_logging
from config.runtime import freeze_startup_heap
from config.settings import get_settings
from store.db import reset_database
from tasks.catalog import reset_process_clients


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _fresh_connections_after_fork(**_: Any) -> None:
    # A forked child must never reuse the parent's sockets: SQLite handles, PG and HTTP pools.
    reset_database()
    reset_process_clients()
    freeze_startup_heap()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _settled(**_: Any) -> None:
    # Threads and solo pools run jobs in this process: keep full collections short here too.
    freeze_startup_heap()


@after_setup_logger.connect  # type: ignore[untyped-decorator]
def _structlog(**_: Any) -> None:
    configure_logging(get_settings())


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _close(**_: Any) -> None:
    reset_process_clients()
