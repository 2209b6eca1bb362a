"""Renumbered plan locals (webhook/engines/plan_locals.py): safe, smaller, same decisions."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from tests.unit.test_embedded_input import EXAMPLES, policy_inputs
from webhook.engines import embedded, renumbering
from webhook.engines.embedded import EmbeddedEngine
from webhook.engines.plan_locals import UnsupportedPlan, _locals_of, compact_plan, frame_size
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import load_bundle


@pytest.fixture(scope="module")
def compiled(policies_dir: Path) -> Any:
    return embedded.compile_bundle(load_bundle(policies_dir))


@pytest.fixture(scope="module")
def compacted(compiled: Any) -> Any:
    bundle = renumbering.compact_locals(compiled)
    assert bundle is not compiled, "the repository's plan must be renumbered"
    return bundle


@pytest.fixture(scope="module")
def plan(compiled: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        embedded._interpreter().save_bundle(tmp, compiled)
        return json.loads((Path(tmp) / "plan.json").read_text())


def _function(name: str, params: list[int], ret: int, blocks: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {"name": name, "path": ["g0", name], "params": params, "return": ret,
            "blocks": [{"stmts": stmts} for stmts in blocks]}  # fmt: skip


def _plan(*functions: dict[str, Any]) -> dict[str, Any]:
    call = {"type": "CallStmt", "stmt": {"func": functions[0]["name"], "args": [], "result": 2}}
    return {"static": {"strings": [{"value": "x"}]}, "plans": {"plans": [{"name": "p", "blocks": [{"stmts": [call]}]}]},
            "funcs": {"funcs": list(functions)}}  # fmt: skip


def _stmt(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "stmt": fields}


def _local(n: int) -> dict[str, Any]:
    return {"type": "local", "value": n}


def test_the_repository_plan_needs_a_fraction_of_the_frame(plan: dict[str, Any]) -> None:
    before, after = frame_size(plan), frame_size(compact_plan(plan))
    assert after * 3 < before, (before, after)


def test_no_function_shares_a_local_with_anything_it_calls(plan: dict[str, Any]) -> None:
    """The invariant that keeps a caller's locals intact: disjoint ranges along every call."""
    compact = compact_plan(plan)
    used: dict[str, set[int]] = {}
    calls: dict[str, set[str]] = {}
    for f in compact["funcs"]["funcs"]:
        found: set[int] = set(f["params"]) | {f["return"]}
        _locals_of(f["blocks"], found)
        used[f["name"]] = found - {0, 1}
        text = json.dumps(f["blocks"])
        calls[f["name"]] = {g["name"] for g in compact["funcs"]["funcs"] if f'"func": "{g["name"]}"' in text}
        assert f["params"][:2] == [0, 1]
    for caller, callees in calls.items():
        for callee in callees:
            assert not used[caller] & used[callee], (caller, callee)


def test_number_literals_come_first_in_the_string_table(plan: dict[str, Any]) -> None:
    compact = compact_plan(plan)
    strings = [s["value"] for s in compact["static"]["strings"]]
    refs = json.dumps(compact["funcs"]).split('"type": "MakeNumberRefStmt", "stmt": {"index": ')[1:]
    indices = {int(r.split(",", 1)[0]) for r in refs}
    assert indices and max(indices) < len(indices)
    assert all(strings[i].lstrip("-").replace(".", "", 1).isdigit() for i in indices)
    assert sorted(s["value"] for s in plan["static"]["strings"]) == sorted(strings)


def test_a_read_before_any_write_keeps_the_plan_as_compiled() -> None:
    reads_early = _function("f", [0, 1], 5, [[_stmt("IsDefinedStmt", source=7), _stmt("ResetLocalStmt", target=5)]])
    with pytest.raises(UnsupportedPlan, match="may read a local before writing it"):
        compact_plan(_plan(reads_early))


def test_a_write_in_a_block_that_may_stop_early_does_not_count_for_the_next() -> None:
    may_stop = [_stmt("EqualStmt", a=_local(0), b=_local(1)), _stmt("AssignVarStmt", source=_local(0), target=5)]
    f = _function("f", [0, 1], 5, [may_stop, [_stmt("ReturnLocalStmt", source=5)]])
    with pytest.raises(UnsupportedPlan):
        compact_plan(_plan(f))
    always = [_stmt("ResetLocalStmt", target=5)]
    g = _function("g", [0, 1], 5, [always, may_stop, [_stmt("ReturnLocalStmt", source=5)]])
    assert frame_size(compact_plan(_plan(g))) < 6


def test_an_unknown_statement_keeps_the_plan_as_compiled() -> None:
    with_stmt = _stmt("WithStmt", local=5, path=[], value=_local(0), block={"stmts": []})
    f = _function("f", [0, 1], 5, [[_stmt("ResetLocalStmt", target=5), with_stmt]])
    with pytest.raises(UnsupportedPlan, match="WithStmt"):
        compact_plan(_plan(f))


def test_callees_are_placed_after_their_callers() -> None:
    body = [_stmt("AssignVarStmt", source=_local(9), target=10), _stmt("ReturnLocalStmt", source=10)]
    leaf = _function("leaf", [0, 1, 9], 10, [[_stmt("ResetLocalStmt", target=10)], body])
    call = _stmt("CallStmt", func="leaf", args=[_local(0), _local(1), _local(3)], result=4)
    root = _function("root", [0, 1], 4, [[_stmt("MakeObjectStmt", target=3), call, _stmt("ReturnLocalStmt", source=4)]])
    compact = compact_plan(_plan(root, leaf))
    by_name = {f["name"]: f for f in compact["funcs"]["funcs"]}
    assert by_name["root"]["return"] == 3 + 1  # plan locals 0..2, then root's two
    assert min(by_name["leaf"]["params"][2], by_name["leaf"]["return"]) > max(3, 4)


def _decide(bundle: Any, policy_input: dict[str, Any]) -> Any:
    try:
        return embedded._evaluate(embedded._interpreter(), bundle, policy_input)
    except EngineError as exc:
        return f"error: {exc}"


FULL_INPUT: dict[str, Any] = {
    "request": {"operation": "UPDATE", "dry_run": False, "group": "apps", "version": "v1", "kind": "Deployment",
                "namespace": "shop", "name": "web", "user": {"username": "alice", "groups": ["devs"]}},
    "workload": {"kind": "Deployment", "labels": {"app": "web"}, "annotations": {}, "template_labels": {"app": "web"},
                 "template_annotations": {}, "replicas": 4},
    "change": {"type": "rollout"},
    "images": [{"container": "web", "container_type": "container", "image": "nginx:1.27",
                "ref": {"valid": True, "error": "", "registry": "docker.io", "repository": "library/nginx",
                        "tag": "1.27", "digest": "", "pinned": False, "name": "docker.io/library/nginx",
                        "normalized": "docker.io/library/nginx:1.27"}}],
    "facts": {"change": {"status": "ok", "create": False, "images_changed": ["web"],
                         "major_version_jumps": [{"container": "web", "from": "1.26", "to": "2.0"}],
                         "replicas": {"old": 2, "new": 4, "change_percent": 100}, "resources_changed": ["web"],
                         "probes_removed": ["readinessProbe of web"], "max_unavailable_all": True,
                         "privileged_added": ["web"], "host_settings_added": ["hostNetwork"], "criticality": "critical",
                         "namespace_criticality": "", "diff_size": 40,
                         "local_time": {"zone": "UTC", "weekday": "Sat", "hour": 3, "off_hours": True}},
              "break_glass": {"present": False, "valid": False, "template_hash": "sha256:x", "error": "not used"},
              "windows": {"status": "ok", "blocking": [], "allowed_windows": [], "inside_allowed": True,
                          "opens_at_text": "", "problems": []}},
}  # fmt: skip


def test_a_risky_rollout_is_decided_alike(compiled: Any, compacted: Any) -> None:
    decision = _decide(compiled, FULL_INPUT)
    assert decision["deny"] and decision["annotations"]["risk-level"] == "deny"
    assert _decide(compacted, FULL_INPUT) == decision
    quiet = copy.deepcopy(FULL_INPUT)
    quiet["facts"]["change"].update(major_version_jumps=[], probes_removed=[], privileged_added=[], diff_size=1)
    assert _decide(compacted, quiet) == _decide(compiled, quiet)


@EXAMPLES
@given(policy_inputs)
def test_renumbered_and_compiled_plans_decide_alike(compiled: Any, compacted: Any, policy_input: Any) -> None:
    assert _decide(compacted, policy_input) == _decide(compiled, policy_input)


async def test_the_engine_serves_the_renumbered_plan(policies_dir: Path) -> None:
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    assert engine._bundle is not None
    with tempfile.TemporaryDirectory() as tmp:
        embedded._interpreter().save_bundle(tmp, engine._bundle)
        assert frame_size(json.loads((Path(tmp) / "plan.json").read_text())) < 1000


async def test_a_failed_renumbering_serves_the_plan_as_compiled(
    policies_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The child may be missing or crash: the revision still loads and decides, as compiled."""
    monkeypatch.setattr(renumbering, "_renumbered_plans", {})
    monkeypatch.setattr(renumbering.sys, "executable", "/nonexistent/python")
    engine = EmbeddedEngine()
    with caplog.at_level("INFO", logger="deployguard.engine"):
        await engine.load(load_bundle(policies_dir))
    assert "kept as compiled" in caplog.text
    with tempfile.TemporaryDirectory() as tmp:
        embedded._interpreter().save_bundle(tmp, engine._bundle)
        assert frame_size(json.loads((Path(tmp) / "plan.json").read_text())) > 1000
    decision = engine.evaluate_sync(FULL_INPUT)
    assert decision["deny"]


async def test_a_revision_that_crashes_rego_cpp_is_refused_and_the_served_one_stays(policies_dir: Path) -> None:
    """The child compiles first; compiling this revision here would abort the test process."""
    from tests.integration.test_serve_https import CRASHING_RULE

    bundle = load_bundle(policies_dir)
    engine = EmbeddedEngine()
    await engine.load(bundle)
    crashing = dataclasses.replace(
        bundle, revision="crashing", modules=(*bundle.modules, ("deployguard/rules/crash.rego", CRASHING_RULE))
    )
    with pytest.raises(PolicyLoadError, match=r"crashed rego-cpp \(SIGABRT\).*refused"):
        await engine.load(crashing)
    assert engine.revision == bundle.revision
    assert engine.evaluate_sync(FULL_INPUT)["deny"]


async def test_a_plan_that_aborts_rego_cpp_when_loaded_back_serves_as_compiled(
    policies_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """rego-cpp compiles, decides with and saves a module holding a literal "\\u0085", then aborts
    loading the saved plan back. The child loads it first, so the plan serves as compiled here
    (before, loading it aborted this test process)."""
    monkeypatch.setattr(renumbering, "_renumbered_plans", {})
    bundle = load_bundle(policies_dir)
    module = 'package deployguard.escaped\n\nimport rego.v1\n\nnote := "a\\u0085b"\n'
    escaped = dataclasses.replace(
        bundle, revision="escaped", modules=(*bundle.modules, ("deployguard/escaped.rego", module))
    )
    engine = EmbeddedEngine()
    with caplog.at_level("INFO", logger="deployguard.engine"):
        await engine.load(escaped)
    assert "kept as compiled" in caplog.text and "Invalid escape sequence" in caplog.text
    assert engine.revision == "escaped" and engine.evaluate_sync(FULL_INPUT)["deny"]
