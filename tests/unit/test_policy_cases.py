"""Policy case files: loading, running on recorded facts, and the CLI that reports them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from webhook.cli import app
from webhook.config import Settings
from webhook.engines.embedded import EmbeddedEngine
from webhook.policy_bundle import load_bundle
from webhook.policy_cases import CaseError, default_cases_dir, load_cases, parse_case, run_cases

SHIPPED = Path(__file__).resolve().parents[2] / "policy-cases"
runner = CliRunner()

PINNED = "nginx@sha256:2c1e9d4b0b1e5c3e2f0a8d6c4b2a09e7f5d3c1b9a7e5c3a1f9e7d5c3b1a9f7e5"


def deployment(image: str, version: str = "1.0") -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "app.kubernetes.io/version": version}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


@pytest.fixture
def slim_policies(tmp_path: Path, policies_dir: Path) -> Path:
    """The shipped policies with one trivial Rego test: the CLI tests are about cases, not Rego tests."""
    copy = tmp_path / "policies"
    shutil.copytree(policies_dir, copy, ignore=shutil.ignore_patterns("*_test.rego"))
    (copy / "smoke_test.rego").write_text("package deployguard_test.smoke\n\nimport rego.v1\n\ntest_ok if true\n")
    return copy


async def _run(policies_dir: Path, docs: list[dict[str, object]]) -> list[tuple[bool, tuple[str, ...]]]:
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    cases = [parse_case(d, f"doc{n}") for n, d in enumerate(docs)]
    return [(r.passed, r.problems) for r in await run_cases(engine, Settings(), cases)]


def test_shipped_cases_sit_beside_the_policies_and_cover_every_default_rule(policies_dir: Path) -> None:
    assert default_cases_dir(policies_dir) == SHIPPED
    cases = load_cases(SHIPPED)
    rules = {r for c in cases for mode in ("deny", "warn") for r in c.rules.get(mode, ())}
    modes = yaml.safe_load((policies_dir / "data.yaml").read_text())["deployguard"]["config"]["rules"]
    assert set(modes) <= rules, f"no case expects {sorted(set(modes) - rules)}"
    assert {c.allowed for c in cases} == {True, False}


async def test_every_shipped_case_passes_on_the_embedded_engine(policies_dir: Path) -> None:
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    results = await run_cases(engine, Settings(), load_cases(SHIPPED))
    assert [(r.case.source, r.problems) for r in results if not r.passed] == []


async def test_a_wrong_expectation_fails_and_says_what_came_out(policies_dir: Path) -> None:
    [(passed, problems)] = await _run(
        policies_dir, [{"object": deployment("nginx:latest"), "expect": {"allowed": True, "warn": ["release_id"]}}]
    )
    assert not passed
    assert problems[0] == "expected allowed, got denied"
    assert problems[1] == "expected warn rules [release_id], got []"
    assert any("[digest_pinning]" in p and "nginx:latest" in p for p in problems)


async def test_recorded_facts_replace_the_gatherers(policies_dir: Path) -> None:
    """The same manifest flips from allowed to denied only because of the recorded facts."""
    unknown_images = {"images": {"status": "unknown", "error": "images: registry down"}}
    results = await _run(
        policies_dir,
        [
            {"object": deployment(PINNED), "expect": {"allowed": True, "deny": []}},
            {
                "object": deployment(PINNED),
                "facts": unknown_images,
                "expect": {"allowed": False, "deny": ["signatures"]},
            },
        ],
    )
    assert results == [(True, ()), (True, ())]


async def test_update_cases_are_classified_from_the_old_object(policies_dir: Path) -> None:
    old, new = deployment(PINNED), deployment(PINNED)
    new["spec"]["replicas"] = 5  # type: ignore[index]
    windows = {
        "status": "ok",
        "blocking": [{"kind": "ChangeFreeze", "name": "f", "namespace": "shop", "reason": "r", "declared_by": "a",
                      "ticket": "", "occasion": "", "change_types": ["rollout"]}],
        "allowed_windows": [], "inside_allowed": True, "opens_at_text": "", "problems": [],
    }  # fmt: skip
    results = await _run(
        policies_dir,
        [
            {"old_object": old, "object": new, "facts": {"windows": windows}, "expect": {"allowed": True}},
            {"old_object": old, "object": deployment("nginx@sha256:" + "1" * 64, "2.0"), "facts": {"windows": windows},
             "expect": {"allowed": False, "deny": ["change_freeze"]}},
        ],
    )  # fmt: skip
    assert results == [(True, ()), (True, ())]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"object": deployment(PINNED)}, "expect.allowed (true or false) is required"),
        ({"object": {"kind": "Deployment"}, "expect": {"allowed": True}}, "object must be a Kubernetes object"),
        ({"object": deployment(PINNED), "expect": {"allowed": True, "deny": "x"}}, "must be a list of rule names"),
        ({"object": deployment(PINNED), "expect": {"allowed": True, "denied": []}}, "unknown keys in expect: denied"),
        ({"objekt": deployment(PINNED), "expect": {"allowed": True}}, "unknown keys objekt"),
        ({"expect": {"allowed": True}}, "object is required"),
    ],
)
def test_malformed_cases_are_refused_with_where_and_why(doc: dict[str, object], message: str) -> None:
    with pytest.raises(CaseError, match=r"^c\.yaml#2: ") as err:
        parse_case(doc, "c.yaml#2")
    assert message in str(err.value)


def test_policy_test_runs_the_cases_beside_the_policies_and_fails_on_a_failing_case(slim_policies: Path) -> None:
    cases = default_cases_dir(slim_policies)
    shutil.copytree(SHIPPED, cases)
    ok = runner.invoke(app, ["policy", "test", "--policies", str(slim_policies)])
    assert ok.exit_code == 0, ok.output
    assert f"CASES PASS: {len(load_cases(SHIPPED))}/{len(load_cases(SHIPPED))}" in ok.output

    bad = {"name": "latest should pass (wrong)", "object": deployment("nginx:latest"), "expect": {"allowed": True}}
    (cases / "zz-wrong.yaml").write_text(yaml.safe_dump(bad))
    failed = runner.invoke(app, ["policy", "test", "--policies", str(slim_policies), "--cases", str(cases)])
    assert failed.exit_code == 1
    assert "zz-wrong.yaml (latest should pass (wrong)): FAIL" in failed.output
    assert "expected allowed, got denied" in failed.output


def test_check_record_case_writes_a_case_that_passes(tmp_path: Path, slim_policies: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all([deployment("nginx:latest"), deployment(PINNED)]))
    cases = tmp_path / "cases"
    recorded = runner.invoke(
        app, ["check", "-f", str(manifest), "--policies", str(slim_policies), "--record-case", str(cases / "rec.yaml")]
    )
    assert recorded.exit_code == 1, recorded.output
    docs = list(yaml.safe_load_all((cases / "rec.yaml").read_text()))
    assert [d["expect"]["allowed"] for d in docs] == [False, True]
    assert docs[0]["expect"]["deny"] == ["digest_pinning"]
    assert "change" in docs[0]["facts"]  # what the gatherers found is recorded
    replayed = runner.invoke(app, ["policy", "test", "--policies", str(slim_policies), "--cases", str(cases)])
    assert replayed.exit_code == 0, replayed.output
    assert "CASES PASS: 2/2" in replayed.output


@pytest.mark.parametrize("file_name", ["crash.rego", "crash_test.rego"])
def test_policy_test_reports_a_module_that_crashes_rego_cpp(tmp_path: Path, policies_dir: Path, file_name: str) -> None:
    """Checked in a child first, test files too: run here, rego-cpp would abort this test process."""
    from tests.integration.test_serve_https import CRASHING_RULE

    policies = tmp_path / "policies"
    shutil.copytree(policies_dir, policies)
    (policies / "deployguard/rules" / file_name).write_text(CRASHING_RULE)
    result = runner.invoke(app, ["policy", "test", "--policies", str(policies)])
    assert result.exit_code == 1
    assert "crashed rego-cpp (SIGABRT)" in result.output
