"""What `pip install .` ships: complete runtime dependencies, locked with hashes, and a wheel
that runs in a clean virtualenv with no dev extras."""

from __future__ import annotations

import ast
import os
import re
import sqlite3
import subprocess
import sys
import time
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.support.procs import ROOT

RUNTIME_PACKAGES = ("api", "config", "store", "integrations", "tasks", "workers")
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
WHEEL_CHECK_BUDGET_S = 90.0


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503), extras and pins dropped."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _declared(extra: str | None = None) -> set[str]:
    project = _project()
    if extra is None:
        return {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    return {_name(r) for r in project["optional-dependencies"][extra]}  # type: ignore[index]


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a lock file."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            pins[_name(match.group(1))] = match.group(2)
    return pins


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported by the runtime packages that are neither ours nor stdlib."""
    ours = {*RUNTIME_PACKAGES, "bench", "tests"}
    found: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ours:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_runtime_code_is_a_declared_dependency() -> None:
    # Given the distributions that provide each module the runtime packages import
    providers = packages_distributions()
    declared = _declared()
    # When each import is traced to its distribution
    undeclared = {
        module: sorted(files)[:3]
        for module, files in _third_party_imports().items()
        if not {_name(d) for d in providers.get(module, [module])} & declared
    }
    # Then every one is in [project] dependencies, not merely pulled in by another package
    assert undeclared == {}


def test_every_declared_dependency_is_pinned_with_hashes_and_both_locks_agree() -> None:
    # Given both lock files
    runtime, dev = _pins(LOCK), _pins(DEV_LOCK)
    # When the declared dependencies are looked up in them
    # Then runtime deps are pinned in both, dev deps in the dev lock, at the same versions
    assert _declared() - set(runtime) == set()
    assert (_declared() | _declared("dev")) - set(dev) == set()
    assert {name: v for name, v in runtime.items() if dev.get(name) != v} == {}
    # And every pin carries a hash, so an install with --require-hashes can check it
    for lock in (LOCK, DEV_LOCK):
        text = lock.read_text()
        assert text.count("==") <= text.count("--hash=sha256:"), lock.name


def test_ci_dockerfile_and_make_install_from_the_locks() -> None:
    # Given the Dockerfile and the Makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    # When their install steps are read
    # Then the image installs the runtime lock and make install (what CI runs) the dev lock
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps -e ." in makefile


@pytest.mark.slow
def test_the_built_wheel_runs_in_a_clean_venv_without_dev_extras(tmp_path: Path) -> None:
    # Given the project built as a wheel, installed with only the locked runtime set into a
    # fresh virtualenv that sees nothing of this one (uv installs, for speed)
    from uv import find_uv_bin

    uv = find_uv_bin()
    began = time.monotonic()
    wheels, venv = tmp_path / "dist", tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env = {k: v for k, v in env.items() if not k.startswith("CONVEYOR_")}

    def run(*argv: str | Path, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr[-3000:]}"
        return result

    run(uv, "build", "--quiet", "--wheel", "--out-dir", wheels, ROOT)
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(uv, "pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", LOCK)
    (wheel,) = wheels.glob("conveyor-*.whl")
    run(uv, "pip", "install", "--quiet", "--python", python, "--no-deps", wheel)
    # When the console script runs there, outside the source tree
    helped = run(venv / "bin" / "conveyor", "--help")
    env["CONVEYOR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrated = run(venv / "bin" / "conveyor", "migrate")
    # And every runtime module is imported from the installed wheel
    imported = run(
        python,
        "-c",
        "import importlib, pkgutil\n"
        f"for top in {RUNTIME_PACKAGES!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    assert 'site-packages' in pkg.__file__, pkg.__file__\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        if not m.name.endswith('__main__') and '.migrations.' not in m.name:\n"
        "            importlib.import_module(m.name)\n"
        "print('imported')",
    )
    took = time.monotonic() - began
    # Then help lists the commands, the schema is created, every module imports, in budget
    assert "migrate" in helped.stdout and "worker" in helped.stdout
    assert migrated.stdout.startswith("migrated ")
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"jobs", "attempts", "api_keys", "alembic_version"} <= tables
    assert imported.stdout.strip() == "imported"
    assert took < WHEEL_CHECK_BUDGET_S, f"the wheel check took {took:.0f}s"
