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
