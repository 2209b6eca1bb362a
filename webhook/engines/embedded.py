"""The embedded engine: rego-cpp in-process through ``regopy``.

Compiled once per revision into a bundle; each evaluation runs the planned
entrypoint. ``strict_built_in_errors`` is on, so an unsupported or failing
built-in becomes an error (and a deny), never a silently undefined rule.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import orjson
import regopy
from regopy import rego_shared

from webhook.engines import DECISION_PATH, PROBE_INPUT
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import PolicyBundle

ENTRYPOINT = "/".join(DECISION_PATH)


def _interpreter() -> regopy.Interpreter:
    interp = regopy.Interpreter()
    interp.strict_built_in_errors = True
    return interp


def compile_bundle(bundle: PolicyBundle, *, with_tests: bool = False, entrypoints: tuple[str, ...] = ()) -> Any:
    """Compile modules and data into a regopy bundle, raising PolicyLoadError on failure."""
    interp = _interpreter()
    try:
        interp.add_data(bundle.data)
        for path, source in bundle.modules + (bundle.tests if with_tests else ()):
            interp.add_module(path, source)
        return interp.build(None, list(entrypoints or (ENTRYPOINT,)))
    except regopy.RegoError as exc:
        raise PolicyLoadError(f"policy revision {bundle.revision} does not compile: {exc}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate keys")
    return dict(pairs)


def parse_output(ok: bool, text: str, what: str) -> Any:
    """Read rego-cpp's output text strictly.

    regopy 1.5.2 writes strings from the input into its JSON output without escaping
    them, so a crafted string could add keys to the decision document (a forged
    ``"deny": []`` would be a wrong allow). Duplicate keys and unparsable text are
    therefore engine errors (deny), never quietly accepted.
    """
    if not ok:
        raise EngineError(f"rego-cpp could not evaluate {what}: {text} (a built-in failed or is unsupported)")
    if text == "undefined":
        raise EngineError(f"{what} is undefined for this input")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        raise EngineError(
            f"rego-cpp returned output that is not well-formed JSON ({exc}); an input string with quotes or "
            "control characters probably reached a message"
        ) from None
    results = doc if isinstance(doc, list) else [doc]
    if len(results) != 1 or not isinstance(results[0], dict) or not results[0].get("expressions"):
        raise EngineError(f"{what} is undefined or not a single value for this input")
    return results[0]["expressions"][0]


def _evaluate(runner: regopy.Interpreter, compiled: Any, policy_input: dict[str, Any]) -> Any:
    """Run the decision entrypoint; read the raw output text ourselves (see parse_output)."""
    try:
        # JSON text as a Rego term: set_input(dict) does not escape quotes in strings.
        runner.set_input_term(orjson.dumps(policy_input).decode())
        impl = rego_shared.rego_bundle_query_entrypoint(runner._impl, compiled._impl, ENTRYPOINT)
    except regopy.RegoError as exc:
        raise EngineError(f"rego-cpp failed: {exc}") from None
    try:
        ok, text = rego_shared.rego_output_ok(impl), rego_shared.rego_output_string(impl)
    finally:
        rego_shared.rego_free_output(impl)
    return parse_output(ok, text, "data.deployguard.decision")


class EmbeddedEngine:
    """rego-cpp, compiled per revision, evaluated inline (sub-millisecond, no I/O)."""

    name = "embedded"

    def __init__(self) -> None:
        self._bundle: Any = None
        self._revision = ""
        self._runner = _interpreter()
        self._lock = threading.Lock()  # one interpreter: set_input + query must not interleave

    @property
    def revision(self) -> str:
        return self._revision

    async def load(self, bundle: PolicyBundle) -> None:
        compiled = compile_bundle(bundle)
        runner = _interpreter()
        try:
            _evaluate(runner, compiled, PROBE_INPUT)
        except EngineError as exc:
            raise PolicyLoadError(f"policy revision {bundle.revision} compiles but cannot decide: {exc}") from None
        with self._lock:
            self._bundle, self._runner, self._revision = compiled, runner, bundle.revision

    def evaluate_sync(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        if self._bundle is None:
            raise EngineError("no policy revision is loaded")
        with self._lock:
            value = _evaluate(self._runner, self._bundle, policy_input)
        if not isinstance(value, dict):
            raise EngineError(f"data.deployguard.decision must be an object, got {type(value).__name__}")
        return value

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        return self.evaluate_sync(policy_input)

    async def ready(self) -> tuple[bool, str]:
        return (True, "") if self._bundle is not None else (False, "no policy revision compiled yet")

    async def close(self) -> None:
        return None
