"""``deployguard check``: text output for every mode (risk annotations too) and ``--explain``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from webhook.check import outcome_text
from webhook.cli import app
from webhook.decision import Decision, Finding
from webhook.observe.explain import Explainer, explanation_text, rule_packages
from webhook.policy_bundle import load_bundle
from webhook.reviewer import Outcome

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_text_output_handles_every_mode_and_shows_the_risk_score() -> None:
    decision = Decision(
        decision_id="d1",
        allowed=False,
        subject="Deployment shop/web",
        findings=(
            Finding("digest_pinning", "not pinned", "pin it", "deny"),
            Finding("release_id", "no release id", "", "warn"),
            Finding("new_rule", "would deny", "", "dryrun"),
            Finding("future", "a mode from a newer policy", "", "audit"),
            Finding("risk-score", "35", mode="annotate"),
            Finding("risk-level", "warn", mode="annotate"),
            Finding("risk-factors", "off-hours in UTC (Sat 22:00) (+15)", mode="annotate"),
            Finding("team", "payments", mode="annotate"),
        ),
    )
    text = outcome_text(Outcome(decision=decision, policy_input=None, response={}))
    assert text.splitlines() == [
        "DENY  Deployment shop/web",
        "  ✗ deny   [digest_pinning] not pinned",
        "           fix: pin it",
        "  ! warn   [release_id] no release id",
        "  · dryrun [new_rule] would deny",
        "  audit    [future] a mode from a newer policy",
        "  risk score 35 (warn); top factors: off-hours in UTC (Sat 22:00) (+15)",
        "  · team: payments",
    ]


def test_check_text_no_longer_crashes_on_risk_annotations(tmp_path: Path) -> None:
    """The default policies score every create (rule risk): `check` must print, not KeyError."""
    result = runner.invoke(app, ["check", "-f", str(EXAMPLES / "deployment-latest.yaml")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("DENY  Deployment shop/web\n")
    assert "[digest_pinning]" in result.output
    assert "  risk score " in result.output


@pytest.fixture(scope="module")
def explainer(policies_dir: Path) -> Explainer:
    return Explainer(load_bundle(policies_dir))


def test_every_rule_package_is_explained_with_its_mode(explainer: Explainer, policies_dir: Path) -> None:
    modes = yaml.safe_load((policies_dir / "data.yaml").read_text())["deployguard"]["config"]["rules"]
    assert set(rule_packages(load_bundle(policies_dir))) == set(modes)
    result = runner.invoke(app, ["check", "-f", str(EXAMPLES / "deployment-latest.yaml"), "--explain", "-o", "json"])
    assert result.exit_code == 1, result.output
    [doc] = json.loads(result.output)
    explained = {e["rule"]: e for e in doc["explain"]}
    assert {r: e["mode"] for r, e in explained.items()} == {
        r: {"enforce": "enforce", "warn": "warn", "dryrun": "dryrun"}.get(m["mode"], "enforce")
        for r, m in modes.items()
    }
    fired = {r for r, e in explained.items() if e["fired"]}
    assert fired == {f["rule"] for f in doc["findings"]} == {"digest_pinning"}
    assert explained["digest_pinning"]["violations"][0]["fix"].startswith("pin it as docker.io/library/nginx:latest@")


def test_explain_text_says_why_a_rule_fired_and_no_violation_for_the_others(explainer: Explainer) -> None:
    digest = "sha256:" + "a" * 64
    policy_input = {
        "request": {"operation": "CREATE", "dry_run": True, "group": "apps", "version": "v1", "kind": "Deployment",
                    "namespace": "shop", "name": "web", "user": {"username": "u", "groups": []}},
        "workload": {"kind": "Deployment", "labels": {}, "annotations": {}, "template_labels": {},
                     "template_annotations": {}, "replicas": 1},
        "change": {"type": "create"},
        "images": [{"container": "web", "container_type": "container", "image": "nginx@" + digest,
                    "ref": {"valid": True, "error": "", "registry": "docker.io", "repository": "library/nginx",
                            "tag": "", "digest": digest, "pinned": True, "name": "docker.io/library/nginx",
                            "normalized": "docker.io/library/nginx@" + digest}}],
        "facts": {"budgets": {"status": "unknown", "error": "budgets: connection refused"}},
    }  # fmt: skip
    explained = {e.rule: e for e in explainer.explain(policy_input)}
    assert {r for r, e in explained.items() if e.fired} == {"release_id", "error_budget_unknown"}
    assert explained["release_id"].mode == "warn"
    text = explanation_text(list(explained.values()))
    assert "    digest_pinning        enforce       no violation" in text
    assert "    error_budget_unknown  warn          fired (1)" in text
    assert "        why: the error budgets of Deployment shop/web could not be read" in text


def test_a_rule_package_the_decision_does_not_evaluate_is_called_out(tmp_path: Path, policies_dir: Path) -> None:
    """A package missing from rule_names and from the modes data never fires: --explain says so."""
    copy = tmp_path / "policies"
    shutil.copytree(policies_dir, copy, ignore=shutil.ignore_patterns("*_test.rego"))
    (copy / "deployguard" / "rules" / "orphan.rego").write_text(
        'package deployguard.rules.orphan\n\nimport rego.v1\n\nviolation contains {"message": "always", "fix": ""}\n'
    )
    explained = {e.rule: e for e in Explainer(load_bundle(copy)).explain({"images": [], "facts": {}})}
    assert explained["orphan"].mode == "not evaluated"
    assert explained["orphan"].violations == ({"message": "always", "fix": ""},)
    assert explained["digest_pinning"].mode == "enforce"
