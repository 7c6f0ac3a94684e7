"""Process tuning applied once a long-running process has finished starting up."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Move every object alive after start-up out of the garbage collector's sight.

    A worker or API process starts with a million-odd objects (Celery, SQLAlchemy, pydantic
    models) that live as long as it does. Left tracked, every full collection walks them all:
    pauses of 50-70 ms measured on the latency benchmark, which were its p99. Frozen, a full
    collection looks only at what the process allocated since. Returns how many were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
