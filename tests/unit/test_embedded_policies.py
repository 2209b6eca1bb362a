"""What decision.rego's shortcuts for rego-cpp rely on, kept true as the rules change.

decision.rego iterates a fixed array of rule names (and the configured extras), looks
up `annotations` only in the rule packages it lists as defining them, and leaves the
listed names out of urlquery.encode. See the comments there and in lib.rego.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from regopy import rego_shared

from webhook.engines import embedded
from webhook.engines.embedded import EmbeddedEngine
from webhook.errors import EngineError
from webhook.policy_bundle import load_bundle

_PACKAGE = re.compile(r"^package\s+deployguard\.rules\.(\w+)\s*$", re.MULTILINE)
_ANNOTATIONS_RULE = re.compile(r"^annotations\b", re.MULTILINE)
ENTRYPOINTS = ("deployguard/_listed", "deployguard/_annotated", "deployguard/rule_names", "deployguard/_calendar_rules")


@pytest.fixture(scope="module")
def values(policies_dir: Path) -> dict[str, Any]:
    compiled = embedded.compile_bundle(load_bundle(policies_dir), entrypoints=ENTRYPOINTS)
    runner = embedded._interpreter()
    embedded.set_input(runner, {})
    found = {}
    for entrypoint in ENTRYPOINTS:
        impl = rego_shared.rego_bundle_query_entrypoint(runner._impl, compiled._impl, entrypoint)
        try:
            text = rego_shared.rego_output_string(impl)
        finally:
            rego_shared.rego_free_output(impl)
        found[entrypoint.rsplit("/", 1)[1]] = embedded.parse_output(True, text, entrypoint)
    return found


def test_the_listed_rules_are_the_registered_ones_once_each(values: dict[str, Any]) -> None:
    assert len(values["_listed"]) == len(set(values["_listed"]))
    assert set(values["_listed"]) == set(values["rule_names"]) | set(values["_calendar_rules"])


def test_listed_names_need_no_percent_encoding(values: dict[str, Any]) -> None:
    """_key leaves a listed name as it is: urlquery.encode would not change it."""
    assert all(re.fullmatch(r"[A-Za-z0-9._~-]+", name) for name in values["_listed"])


def test_the_rules_that_define_annotations_are_the_annotated_ones(policies_dir: Path, values: dict[str, Any]) -> None:
    defining = set()
    for path in (policies_dir / "deployguard" / "rules").glob("*.rego"):
        if path.name.endswith("_test.rego"):
            continue
        source = path.read_text()
        package = _PACKAGE.search(source)
        if package and _ANNOTATIONS_RULE.search(source):
            defining.add(package.group(1))
    assert defining == set(values["_annotated"])
    assert set(values["_annotated"]) <= set(values["_listed"])


async def test_a_guard_on_one_argument_runs_before_a_built_in_on_another(policies_dir: Path) -> None:
    """rego-cpp orders a function's expressions by its parameters: endswith(img.image)
    must not run on a non-string image before the tag is found not to be "latest"."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    image = {"container": "web", "container_type": "container", "image": 42,
             "ref": {"valid": True, "error": "", "registry": "docker.io", "repository": "library/nginx", "tag": "1.27",
                     "digest": "", "pinned": False, "name": "docker.io/library/nginx",
                     "normalized": "docker.io/library/nginx:1.27"}}  # fmt: skip
    policy_input = {"request": {"operation": "CREATE", "dry_run": False, "group": "apps", "version": "v1",
                                "kind": "Deployment", "namespace": "shop", "name": "web",
                                "user": {"username": "alice", "groups": []}},
                    "workload": {"kind": "Deployment", "labels": {"app.kubernetes.io/version": "1"}, "annotations": {},
                                 "template_labels": {}, "template_annotations": {}, "replicas": 1},
                    "change": {"type": "create"}, "images": [image], "facts": {}}  # fmt: skip
    decision = await engine.evaluate(policy_input)
    assert [f["rule"] for f in decision["deny"]] == ["digest_pinning"]
    assert 'tag "1.27" can be pushed again' in decision["deny"][0]["message"]


def _pinned_deployment(
    *, change: str = "create", name: str = "web", labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None, facts: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The policy input of a Deployment with one pinned image, as the reviewer builds it."""
    image = {"container": "web", "container_type": "container", "image": "nginx@sha256:" + "a" * 64,
             "ref": {"valid": True, "error": "", "registry": "docker.io", "repository": "library/nginx", "tag": "",
                     "digest": "sha256:" + "a" * 64, "pinned": True, "name": "docker.io/library/nginx",
                     "normalized": "docker.io/library/nginx@sha256:" + "a" * 64}}
    return {"request": {"operation": "CREATE" if change == "create" else "UPDATE", "dry_run": False,
                        "group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop", "name": name,
                        "user": {"username": "alice", "groups": []}},
            "workload": {"kind": "Deployment", "labels": labels or {}, "annotations": annotations or {},
                         "template_labels": {}, "template_annotations": {}, "replicas": 1},
            "change": {"type": change}, "images": [image], "facts": facts or {}}  # fmt: skip


@pytest.mark.parametrize("release_id", ["C:\\users\\x", "git-4f2a\\u0041", '" \\ "'])
async def test_a_release_id_with_backslashes_is_decided_not_an_engine_error(
    policies_dir: Path, release_id: str
) -> None:
    """rego-cpp 1.5.2's trim_space fails on some backslash sequences (found by fuzzing); the
    release_id rule decides such values without it: set, so no warning."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    decision = await engine.evaluate(_pinned_deployment(annotations={"deployguard.io/release-id": release_id}))
    assert decision["deny"] == [] and [f["rule"] for f in decision["warn"]] == [], decision


_BLOCKED = {"windows": {"status": "ok", "blocking": [], "inside_allowed": False, "allowed_windows": ["weekdays"],
                        "opens_at_text": "Mon 09:00 UTC"}}  # fmt: skip
_REJECTED = {"break_glass": {"present": True, "valid": False, "template_hash": "sha256:ab", "error": "expired"}}


@pytest.mark.parametrize("name", ["we\\u/b", "\\/", "日/", 'a"b'])
@pytest.mark.parametrize(("facts", "rule"), [(_REJECTED, "break_glass"), (_BLOCKED, "change_freeze")])
async def test_a_name_that_is_not_printable_shows_as_a_placeholder_in_the_sign_command(
    policies_dir: Path, name: str, facts: dict[str, Any], rule: str
) -> None:
    """Only a client that bypasses the API server's validation sends such a name (found by
    fuzzing): rego-cpp's sprintf failed on `\\u/` ("stoul"), so the change was denied as an
    engine error, and a quote would have broken the output. The rule decides; the fix says NAME."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    absent = {"break_glass": {"present": False, "valid": False, "template_hash": "sha256:ab"}}
    decision = await engine.evaluate(_pinned_deployment(
        change="rollout", name=name, labels={"app.kubernetes.io/version": "1"}, facts={**absent, **facts}))
    assert [f["rule"] for f in decision["deny"]] == [rule], decision
    assert "deployguard break-glass sign --namespace shop --kind Deployment --name NAME --template-hash sha256:ab" in (
        decision["deny"][0]["fix"]
    )


def test_an_error_tree_reported_as_ok_is_an_engine_error_with_rego_cpps_reason() -> None:
    text = "(error\n  (errormsg 23:Invalid escape sequence)\n  (errorast\n    (rego-input ...)))"
    with pytest.raises(EngineError, match=r"could not evaluate the decision: Invalid escape sequence \(a built-in"):
        embedded.parse_output(True, text, "the decision")
