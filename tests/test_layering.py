"""Dependencies point one way (docs/design.md §2): each package imports only the ones below it."""

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
    "workers": {"config", "store", "tasks"},
    "api": {"config", "store", "tasks", "integrations"},
}
# Of `integrations`, the API may use only these modules (README's layering table): the job-type
# registry (payload schemas), inbound webhook signature checks, redaction, and for outbound
# webhook endpoints the address check at registration and the sealing of the signing secret;
# for data sources the check that auth header text can be sent (the pull checks it again).
API_INTEGRATIONS = {
    "integrations.registry",
    "integrations.base",
    "integrations.payments.signing",
    "integrations.redact",
    "integrations.outbound",
    "integrations.webhooks.secrets",
    "integrations.header_text",
}


def imported_modules(path: Path) -> set[str]:
    """Every module of ours a module imports, by its full dotted name."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in OURS}


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


def test_the_api_uses_only_the_allowed_modules_of_integrations() -> None:
    # Given every module of the API
    offenders = {}
    for path in sorted((ROOT / "api").rglob("*.py")):
        # When its imports of integrations are read
        used = {m for m in imported_modules(path) if m.startswith("integrations")}
        bad = used - API_INTEGRATIONS
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    # Then only the allowed modules appear
    assert offenders == {}
