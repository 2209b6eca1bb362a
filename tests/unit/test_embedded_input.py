"""The embedded engine's input paths: built node by node, or parsed from JSON text.

``webhook.engines.embedded.set_input`` builds the input with regopy's node builder
(strings pre-escaped as orjson escapes them) and falls back to the JSON-term parser
for what the builder cannot state exactly (floats, integers beyond 64 bits). Both
must give rego-cpp the same document: the same text when the input is echoed back,
and the same decision. Object keys are reordered (hot keys first), which JSON allows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import regopy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regopy import rego_shared

from webhook.engines import embedded
from webhook.engines.embedded import INPUT_SHAPE, EmbeddedEngine, reordered, set_input
from webhook.errors import EngineError
from webhook.policy_bundle import load_bundle

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NASTY = ['"', "\\", '\\"', '"}], "deny": [], "x": [{"a": "', "\u0000", "\u001f", "\n\r\t\b\f", "\u007f", "\u2028",
         "é", "日本", "😀", "\ud7ff", " ", "", "a" * 3000, "/", "\\u0041", "%20", "+"]  # fmt: skip
strings = st.sampled_from(NASTY) | st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F))
integers = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.sampled_from([0, -1, 2**63 - 1, -(2**63)])
scalars = st.none() | st.booleans() | integers | strings
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
                      max_leaves=25)  # fmt: skip

# Policy inputs shaped as webhook/policy_input.py builds them, with hostile strings where
# users control them: what the decision rules read, so both paths are held to one decision.
_ref = st.fixed_dictionaries({
    "valid": st.booleans(), "error": strings, "registry": st.sampled_from(["docker.io", "Evil.io"]) | strings,
    "repository": strings, "tag": st.sampled_from(["latest", "", "1.2"]) | strings,
    "digest": st.sampled_from(["", "sha256:" + "a" * 64]), "pinned": st.booleans(), "name": strings,
    "normalized": strings,
})  # fmt: skip
_image = st.fixed_dictionaries({
    "container": strings, "container_type": st.sampled_from(["container", "initContainer", "ephemeralContainer"]),
    "image": strings, "ref": _ref,
})  # fmt: skip
policy_inputs = st.fixed_dictionaries({
    "request": st.fixed_dictionaries({
        "operation": st.sampled_from(["CREATE", "UPDATE"]), "dry_run": st.booleans(), "group": st.just("apps"),
        "version": st.just("v1"), "kind": strings, "namespace": strings, "name": strings,
        "user": st.fixed_dictionaries({"username": strings, "groups": st.lists(strings, max_size=2)}),
    }),
    "workload": st.fixed_dictionaries({
        "kind": strings, "labels": st.dictionaries(strings, strings, max_size=3),
        "annotations": st.dictionaries(strings, strings, max_size=3),
        "template_labels": st.dictionaries(strings, strings, max_size=3),
        "template_annotations": st.dictionaries(strings, strings, max_size=3), "replicas": st.none() | integers,
    }),
    "change": st.fixed_dictionaries({"type": st.sampled_from(["create", "rollout", "rollback", "scale"])}),
    "images": st.lists(_image, max_size=2),
    "facts": st.fixed_dictionaries({
        "break_glass": st.fixed_dictionaries({"present": st.booleans(), "valid": st.booleans(),
                                              "template_hash": strings, "error": strings}),
        "windows": st.fixed_dictionaries({"status": st.sampled_from(["ok", "unknown"]), "blocking": st.just([]),
                                          "inside_allowed": st.booleans(), "allowed_windows": st.lists(strings,
                                          max_size=2), "opens_at_text": strings, "problems": st.lists(strings,
                                          max_size=2), "error": strings}),
    }),
})  # fmt: skip


@pytest.fixture(scope="module")
def echo() -> Any:
    """A bundle whose only rule is the input itself."""
    interp = regopy.Interpreter()
    interp.add_module("echo.rego", "package echo\n\nimport rego.v1\n\ndoc := input\n")
    return interp.build(None, ["echo/doc"])


@pytest.fixture(scope="module")
def policies(policies_dir: Path) -> Any:
    return embedded.compile_bundle(load_bundle(policies_dir))


def _output(runner: regopy.Interpreter, bundle: Any, entrypoint: str) -> str:
    impl = rego_shared.rego_bundle_query_entrypoint(runner._impl, bundle._impl, entrypoint)
    try:
        return str(rego_shared.rego_output_string(impl))
    finally:
        rego_shared.rego_free_output(impl)


def _both(value: Any, bundle: Any, entrypoint: str) -> tuple[str, str]:
    """(node path, JSON-term path) output texts for the same input."""
    by_node, by_text = embedded._interpreter(), embedded._interpreter()
    set_input(by_node, value)
    by_text.set_input_term(orjson.dumps(reordered(value, INPUT_SHAPE)).decode())
    return _output(by_node, bundle, entrypoint), _output(by_text, bundle, entrypoint)


def _builds(value: Any) -> bool:
    handle = embedded._capi.regoNewInput()
    try:
        embedded._push(handle, value, INPUT_SHAPE)
        return True
    except embedded._NotBuildable:
        return False
    finally:
        embedded._capi.regoFreeInput(handle)


@EXAMPLES
@given(values)
def test_the_node_path_stores_what_the_json_term_path_stores(echo: Any, value: Any) -> None:
    on_node, on_text = _both({"v": value}, echo, "echo/doc")
    assert _builds({"v": value})
    assert on_node == on_text
    assert json.loads(on_node)["expressions"][0] == {"v": value}


def _decision(text: str) -> Any:
    try:
        return embedded.parse_output(not text.startswith("(error"), text, "the decision")
    except EngineError:
        return "error"  # a deny; the text dumps the input's syntax tree, which differs


@EXAMPLES
@given(policy_inputs)
def test_both_paths_decide_alike(policies: Any, policy_input: dict[str, Any]) -> None:
    on_node, on_text = _both(policy_input, policies, embedded.ENTRYPOINT)
    assert _decision(on_node) == _decision(on_text)
    if not on_node.startswith("(error"):
        assert on_node == on_text


@pytest.mark.parametrize("value", [0.5, -0.0, 1e300, 1e-7, 2**63, 2**64 - 1, [1, 2.5], {"a": {"b": 3.25}}])
def test_what_the_node_builder_cannot_state_takes_the_json_text(echo: Any, value: Any) -> None:
    """regoInputFloat would print six decimals; a 64-bit C integer cannot hold 2**63."""
    assert not _builds({"v": value})
    on_node, on_text = _both({"v": value}, echo, "echo/doc")
    assert on_node == on_text
    assert json.loads(on_node)["expressions"][0] == {"v": value}


def test_other_types_orjson_takes_take_the_json_text(echo: Any) -> None:
    assert not _builds({"v": (1, "a")})
    on_node, on_text = _both({"v": (1, "a")}, echo, "echo/doc")
    assert on_node == on_text
    assert json.loads(on_node)["expressions"][0] == {"v": [1, "a"]}


@pytest.mark.parametrize("value", [{1: "a"}, {"a": 2**64}, {"a": -(2**63) - 1}])
def test_what_json_cannot_hold_fails_as_before(value: Any) -> None:
    """orjson's TypeError, as when the input was always sent as JSON text."""
    with pytest.raises(TypeError):
        set_input(embedded._interpreter(), value)


def test_reordering_keeps_the_document_and_moves_hot_keys_first() -> None:
    doc = {"request": {"name": "n", "kind": "K"}, "images": [{"container": "c", "ref": {"tag": "t", "valid": True}}],
           "facts": {"windows": {}, "change": {"diff_size": 1, "status": "ok"}}, "extra": 1}  # fmt: skip
    moved = reordered(doc, INPUT_SHAPE)
    assert moved == doc
    assert list(moved) == ["facts", "images", "request", "extra"]
    assert list(moved["facts"]) == ["change", "windows"] and list(moved["facts"]["change"]) == ["status", "diff_size"]
    assert list(moved["images"][0]) == ["ref", "container"] and list(moved["images"][0]["ref"]) == ["valid", "tag"]
    assert list(moved["request"]) == ["kind", "name"]


@pytest.mark.parametrize("name", ['x"}], "deny": [], "zz": [{"q": "', 'a\\"b', "a\\", "\u0000\n"])
async def test_a_crafted_string_cannot_forge_the_decision(policies_dir: Path, name: str) -> None:
    """The node builder stores strings escaped: the decision text stays well-formed."""
    engine = EmbeddedEngine()
    await engine.load(load_bundle(policies_dir))
    image = {"container": name, "container_type": "container", "image": name,
             "ref": {"valid": False, "error": name, "registry": "", "repository": "", "tag": "", "digest": "",
                     "pinned": False, "name": "", "normalized": ""}}  # fmt: skip
    policy_input = {"request": {"operation": "CREATE", "dry_run": False, "group": "apps", "version": "v1",
                                "kind": "Deployment", "namespace": name, "name": name,
                                "user": {"username": name, "groups": [name]}},
                    "workload": {"kind": "Deployment", "labels": {name: name}, "annotations": {name: name},
                                 "template_labels": {}, "template_annotations": {}, "replicas": 1},
                    "change": {"type": "create"}, "images": [image], "facts": {}}  # fmt: skip
    try:
        decision = await engine.evaluate(policy_input)
    except EngineError:
        return  # a deny; never a forged allow
    assert [f["rule"] for f in decision["deny"]] == ["image_reference"]
    assert set(decision) <= {"deny", "warn", "dryrun", "annotations"}
