"""Test helpers: real processes, free ports, deadlines."""
