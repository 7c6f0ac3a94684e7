"""Benchmarks: Conveyor against raw Celery and Dramatiq, interleaved, printed as ratios."""
