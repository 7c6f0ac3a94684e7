"""Dependencies point one way (DESIGN §2): each package imports only the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.procs import ROOT

OURS = {"config", "store", "integrations", "tasks", "workers", "api"}
ALLOWED = {
    "config": set(),
    "store": {"config"},
    "integrations": {"config"},
    "tasks": {"config", "store", "integrations"},
    "workers": {"config", "store", "integrations", "tasks"},
    # The API validates payloads against the job-type registry and publishes through tasks.
    "api": {"config", "store", "integrations", "tasks"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of ours that a module imports."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_lies_below_it(package: str) -> None:
    # Given every module of the package
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        # When its imports are read
        bad = imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    # Then none reaches up or sideways
    assert offenders == {}
