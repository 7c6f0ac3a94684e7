"""Typed models, the engine per process, repository functions and migrations."""
