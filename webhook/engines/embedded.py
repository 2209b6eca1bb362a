"""The embedded engine: rego-cpp in-process through ``regopy``.

Compiled once per revision into a bundle; each evaluation runs the planned
entrypoint. ``strict_built_in_errors`` is on, so an unsupported or failing
built-in becomes an error (and a deny), never a silently undefined rule.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

import orjson
import regopy
from regopy import rego_shared

from webhook.engines import DECISION_PATH, PROBE_INPUT
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import PolicyBundle

ENTRYPOINT = "/".join(DECISION_PATH)
log = logging.getLogger("deployguard.engine")

# The order of an object's keys as rego-cpp stores them: hot keys first, then the rest in
# their own order. rego-cpp finds an object member by serialising the key of every
# member before it (a string serialisation each), and a JSON object has no order, so
# putting the keys the policies look up most in front changes no result, only the time.
# A shape is (keys first, shapes of the members' values by key); a list value's shape
# applies to each of its elements. Only objects with fixed field names have a shape:
# maps such as labels keep their order.
Shape = tuple[tuple[str, ...], Mapping[str, "Shape"]]
_PLAIN: Shape = ((), {})

INPUT_SHAPE: Shape = (
    ("facts", "images", "change", "workload", "request"),
    {
        "facts": (
            ("change", "break_glass", "windows", "images", "budgets"),
            {
                "change": (
                    (
                        "status",
                        "create",
                        "images_changed",
                        "major_version_jumps",
                        "replicas",
                        "resources_changed",
                        "probes_removed",
                        "max_unavailable_all",
                        "privileged_added",
                        "host_settings_added",
                        "criticality",
                        "local_time",
                        "diff_size",
                    ),
                    {
                        "local_time": (("off_hours", "zone", "weekday", "hour"), {}),
                        "replicas": (("change_percent",), {}),
                    },
                ),
                "break_glass": (("valid", "present", "template_hash", "error"), {}),
                "windows": (
                    ("blocking", "inside_allowed", "status", "problems", "allowed_windows", "opens_at_text"),
                    {},
                ),
                "images": (("status", "by_image"), {}),
                "budgets": (("status", "slos"), {}),
            },
        ),
        "images": (
            ("ref", "image", "container_type", "container"),
            {"ref": (("valid", "pinned", "name", "tag", "normalized", "registry", "digest", "repository"), {})},
        ),
        "change": (("type",), {}),
        "workload": (("labels", "template_labels", "annotations", "template_annotations"), {}),
        "request": (("namespace", "kind", "name"), {}),
    },
)

# The same for the data document (data.deployguard.config.*), ordered once per revision.
DATA_SHAPE: Shape = (
    ("deployguard",),
    {
        "deployguard": (
            ("config",),
            {
                "config": (
                    (
                        "rules",
                        "allowed_registries",
                        "release_id",
                        "digest_pinning",
                        "governance",
                        "risk",
                        "change_freeze",
                        "error_budget",
                    ),
                    {"risk": (("weights", "replica_change_percent", "large_diff", "criticality", "thresholds"), {})},
                )
            },
        )
    },
)


def reordered(value: Any, shape: Shape) -> Any:
    """``value`` with the keys of its objects in ``shape``'s order (a copy; equal as JSON)."""
    if isinstance(value, dict):
        first, shapes = shape
        keys = [k for k in first if k in value] + [k for k in value if k not in first]
        return {k: reordered(value[k], shapes.get(k, _PLAIN)) for k in keys}
    if isinstance(value, list):
        return [reordered(item, shape) for item in value]
    return value


def _interpreter() -> regopy.Interpreter:
    interp = regopy.Interpreter()
    interp.strict_built_in_errors = True
    return interp


def compile_bundle(bundle: PolicyBundle, *, with_tests: bool = False, entrypoints: tuple[str, ...] = ()) -> Any:
    """Compile modules and data into a regopy bundle, raising PolicyLoadError on failure."""
    interp = _interpreter()
    try:
        interp.add_data(reordered(bundle.data, DATA_SHAPE))
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


_ERROR_MESSAGE = re.compile(r"\(errormsg \d+:([^\n)]*)")


def parse_output(ok: bool, text: str, what: str) -> Any:
    """Read rego-cpp's output text strictly.

    regopy 1.5.2 writes strings from the input into its JSON output without escaping
    them, so a crafted string could add keys to the decision document (a forged
    ``"deny": []`` would be a wrong allow). Duplicate keys and unparsable text are
    therefore engine errors (deny), never quietly accepted.
    """
    if not ok or text.startswith("(error"):
        # rego-cpp 1.5.2 may also report a failed built-in as an error tree with ok set
        reason = _ERROR_MESSAGE.search(text)
        detail = reason.group(1) if reason else text[:200]
        raise EngineError(f"rego-cpp could not evaluate {what}: {detail} (a built-in failed or is unsupported)")
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


# regopy's input node builder (regoInput*), with prototypes of our own: building the
# input node directly costs a third of parsing the same document as a Rego term.
_capi = ctypes.CDLL(rego_shared.path)
for _name, _args in {
    "regoInputString": [ctypes.c_void_p, ctypes.c_char_p],
    "regoInputInt": [ctypes.c_void_p, ctypes.c_int64],
    "regoInputBoolean": [ctypes.c_void_p, ctypes.c_bool],
    "regoInputNull": [ctypes.c_void_p],
    "regoInputObjectItem": [ctypes.c_void_p],
    "regoInputObject": [ctypes.c_void_p, ctypes.c_uint32],
    "regoInputArray": [ctypes.c_void_p, ctypes.c_uint32],
    "regoInputValidate": [ctypes.c_void_p],
    "regoSetInput": [ctypes.c_void_p, ctypes.c_void_p],
}.items():
    getattr(_capi, _name).argtypes = _args
    getattr(_capi, _name).restype = ctypes.c_uint32
_capi.regoNewInput.argtypes = []
_capi.regoNewInput.restype = ctypes.c_void_p
_capi.regoFreeInput.argtypes = [ctypes.c_void_p]
_capi.regoFreeInput.restype = None

_input_string, _input_int, _input_bool = _capi.regoInputString, _capi.regoInputInt, _capi.regoInputBoolean
_input_null, _input_item = _capi.regoInputNull, _capi.regoInputObjectItem
_input_object, _input_array = _capi.regoInputObject, _capi.regoInputArray
_INT64 = range(-(2**63), 2**63)
_escaped_cache: dict[str, bytes] = {}  # keys and short values repeat from request to request


class _NotBuildable(Exception):
    """A value the node builder cannot state exactly as the JSON text would: use the text."""


def _escaped(s: str) -> bytes:
    """The string as it stands between the quotes in orjson's output.

    rego-cpp keeps a string in its escaped JSON form, so the node's text is exactly what
    the term parser would store for the same document (the differential test in
    tests/unit/test_embedded_input.py holds both paths to that), and the output stays
    well-formed: regoInputString stores its argument as it is, without escaping it.
    """
    encoded = _escaped_cache.get(s)
    if encoded is None:
        encoded = orjson.dumps(s)[1:-1]
        if len(s) <= 256 and len(_escaped_cache) < 8192:
            _escaped_cache[s] = encoded
    return encoded


def _push(handle: int, value: Any, shape: Shape) -> None:
    kind = type(value)
    if kind is str:
        _input_string(handle, _escaped(value))
    elif kind is dict:
        first, shapes = shape
        keys: Any = value
        if first:
            keys = [k for k in first if k in value]
            if len(keys) < len(value):
                keys += [k for k in value if k not in first]
        for key in keys:
            if type(key) is not str:
                raise _NotBuildable
            _input_string(handle, _escaped(key))
            _push(handle, value[key], shapes.get(key, _PLAIN))
            _input_item(handle)
        _input_object(handle, len(value))
    elif kind is list:
        for item in value:
            _push(handle, item, shape)
        _input_array(handle, len(value))
    elif kind is bool:
        _input_bool(handle, value)
    elif kind is int and value in _INT64:
        _input_int(handle, value)
    elif value is None:
        _input_null(handle)
    else:
        # Floats: regoInputFloat prints six decimals ("0.100000"), not the JSON number.
        raise _NotBuildable


def set_input(runner: regopy.Interpreter, policy_input: Any) -> None:
    """Give ``runner`` the input, keys in INPUT_SHAPE's order.

    Built node by node when every value is a string, integer (64-bit), boolean, null,
    object or array; otherwise (floats) parsed from orjson's text. The JSON-term path
    escapes strings as JSON does; the node path gets the same text (see _escaped).
    """
    handle = _capi.regoNewInput()
    try:
        try:
            _push(handle, policy_input, INPUT_SHAPE)
        except _NotBuildable:
            runner.set_input_term(orjson.dumps(reordered(policy_input, INPUT_SHAPE)).decode())
            return
        if _capi.regoInputValidate(handle) != 0 or _capi.regoSetInput(runner._impl, handle) != 0:
            raise regopy.RegoError(rego_shared.rego_get_error(runner._impl))
    finally:
        _capi.regoFreeInput(handle)


def _evaluate(runner: regopy.Interpreter, compiled: Any, policy_input: dict[str, Any]) -> Any:
    """Run the decision entrypoint; read the raw output text ourselves (see parse_output)."""
    try:
        set_input(runner, policy_input)
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
        """Compile ``bundle`` and serve it; PolicyLoadError (the current revision serves on) if it cannot decide."""
        from webhook.engines.renumbering import compile_in_child, renumbered_if_equal  # they import this module

        # The child first: a revision that crashes rego-cpp is refused there, not compiled here.
        compact = await compile_in_child(bundle)
        compiled = compile_bundle(bundle)
        runner = _interpreter()
        try:
            probe = _evaluate(runner, compiled, PROBE_INPUT)
        except EngineError as exc:
            raise PolicyLoadError(f"policy revision {bundle.revision} compiles but cannot decide: {exc}") from None
        compiled = renumbered_if_equal(compact, compiled, probe)
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
