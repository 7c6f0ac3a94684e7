"""The shipped Grafana dashboard and Prometheus alert rules use only metrics Conveyor exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.app import create_app
from config.settings import Settings
from tests.support.procs import ROOT

METRIC = re.compile(r"\b(conveyor_[a-z_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest.fixture
def exported(settings: Settings) -> Iterator[set[str]]:
    """Every series name the API's /metrics can show (its counters, histograms and gauges)."""
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr("t")}))
    with TestClient(app) as client:
        text = client.get("/metrics", headers={"Authorization": "Bearer t"}).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    yield names


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every dashboard target and alert rule."""
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"dashboard: {panel['title']}", target["expr"]
    alerts = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "annotations"} <= set(rule), rule
            yield f"alert: {rule['alert']}", rule["expr"]


def test_every_metric_the_dashboard_and_alerts_use_is_exported(exported: set[str]) -> None:
    # Given the dashboard's and the alerts' expressions
    used = {(where, name) for where, expr in expressions() for name in METRIC.findall(expr)}
    # When each metric name is looked up among what /metrics exports
    missing = sorted((where, name) for where, name in used if name not in exported)
    # Then none is missing, and the alerts the runbook names are all there
    assert used and missing == []
    alerts = {where for where, _ in expressions() if where.startswith("alert")}
    for name in ("QueuedJobsWaitingTooLong", "DeadJobsGrowing", "BreakerOpen", "NoConsumerFor"):
        assert any(name in a for a in alerts), name


def readme_operations() -> str:
    """README's "Operations" section, up to the next top-level heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Operations\n")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_operations_lists_every_metric_and_nothing_else(exported: set[str]) -> None:
    # Given the metric names /metrics exports (counters as `_total`, histograms by base name;
    # prometheus-client's `_created` timestamps are not metrics of ours)
    families = {
        name.removesuffix("_bucket")
        for name in exported
        if name.startswith("conveyor_") and not name.endswith(("_count", "_sum", "_created"))
    }
    # When README's Operations metrics table is read
    documented = set(re.findall(r"^\| `(conveyor_[a-z_]+)`", readme_operations(), re.MULTILINE))
    # Then each exported metric has a row, and each row is a real metric
    assert sorted(families - documented) == []
    assert sorted(documented - families) == []


def test_readme_operations_names_every_alert_and_console_page() -> None:
    # Given the alert rules and the console's pages
    alerts = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    names = [rule["alert"] for group in alerts["groups"] for rule in group["rules"]]
    from fastapi.routing import APIRoute

    from api.ops import console

    pages = {
        r.path
        for r in console.router.routes
        if isinstance(r, APIRoute) and "GET" in (r.methods or ())
    }
    section = readme_operations()
    # Then README's Operations section names each, and its screenshots are committed
    assert [n for n in names if f"`{n}`" not in section] == []
    assert [p for p in pages if f"`{p}" not in section] == []
    shots = re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", section)
    assert shots and [s for s in shots if not (ROOT / s).is_file()] == []
