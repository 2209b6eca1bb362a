"""The Grafana dashboard and the alert rules shipped with the chart are valid and use only our metrics.

promtool (from the Debian ``prometheus`` package, installed by scripts/test.sh) checks the
rules file, and every dashboard query, turned into a recording rule, is parsed by it too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import webhook.observe.metrics  # noqa: F401 - registers deployguard's metrics
from tests.conftest import REPO

pytestmark = pytest.mark.integration

FILES = REPO / "charts/deployguard/files"
DASHBOARD = FILES / "grafana-dashboard.json"
ALERTS = FILES / "alerts.yaml"
METRIC = re.compile(r"\bdeployguard_[a-z0-9_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed; install the Debian package: apt-get install prometheus")
    return found


def exported() -> set[str]:
    """Every sample name deployguard can expose (counters' _total, histograms' _bucket/_sum/_count)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("deployguard_"):
            names.add(family.name)
            names.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count", "_created"))
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def test_the_alert_rules_pass_promtool() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_alerts_cover_errors_latency_certificates_and_policy_compiles() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert 'decision="error"' in exprs["DeployguardWebhookErrors"]
    assert "histogram_quantile(0.99" in exprs["DeployguardLatencyNearTimeout"]
    assert "deployguard_tls_certificate_expiry_timestamp_seconds" in exprs["DeployguardCertificateExpiresSoon"]
    assert "deployguard_policy_load_failing" in exprs["DeployguardPolicyCompileFailing"]
    unknown = {m for e in exprs.values() for m in METRIC.findall(e)} - exported()
    assert not unknown, f"alerts use metrics deployguard does not export: {unknown}"


def test_every_dashboard_query_parses_and_uses_only_exported_metrics(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    unknown = {(title, m) for title, e in queries for m in METRIC.findall(e) if m not in exported()}
    assert not unknown, f"dashboard panels use metrics deployguard does not export: {unknown}"
    # Grafana's $__rate_interval is not PromQL; promtool parses each query as a recording rule.
    rules: dict[str, Any] = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": e.replace("$__rate_interval", "5m")}
        for n, (_, e) in enumerate(queries)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_has_executive_on_call_and_debug_rows() -> None:
    doc = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert [r.split(":")[0] for r in rows] == ["Executive", "On-call", "Debug"]
    assert doc["uid"] == "deployguard" and len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
