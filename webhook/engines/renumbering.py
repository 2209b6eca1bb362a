"""Compile a revision in a child process first: a crash check, and its locals renumbered.

**Crash check.** rego-cpp aborts its process on some malformed policies (a rule named
like a built-in the same package calls: ``std::terminate`` while compiling, where OPA
reports a type error). A policy edit must not take every webhook replica down, so each
revision is compiled, and decides the probe input, in the child before the serving
process compiles it: a child killed by a signal before it got that far refuses the
revision (PolicyLoadError), and the current one keeps serving.

**Renumbering** (webhook/engines/plan_locals.py). rego-cpp copies a frame of every
local in the bundle on each built-in call; the renumbered plan needs about a fifth of
the frame. The bundle goes through rego-cpp's own save (plan.json) and load, so the
loaded plan passes rego-cpp's checks.

The save runs in a short-lived child (``python -m webhook.engines.renumbering SPEC
OUT``): rego-cpp's save keeps ~13 MB of its allocator's memory for the life of a
process, and a crash in it must not take the webhook down. The child also loads the
saved plan and decides the probe input with it (loading can abort where compiling did
not); the serving process awaits it without blocking its event loop, loads the result
and serves it only when it decides the probe input as the compiled plan does; on any
other failure the compiled plan serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import regopy

from webhook.engines import PROBE_INPUT
from webhook.engines.embedded import _evaluate, _interpreter, compile_bundle
from webhook.engines.plan_locals import UnsupportedPlan, compact_plan, frame_size
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import PolicyBundle

log = logging.getLogger("deployguard.engine")
SURVIVED = "compiled and decided the probe input"  # the child's line on stdout once past the crash check


def save_renumbered(compiled: Any, directory: str) -> tuple[int, int]:
    """Save ``compiled`` to ``directory`` with its locals renumbered; the frame sizes before and after.

    Raises UnsupportedPlan when renumbering is not shown safe.
    """
    _interpreter().save_bundle(directory, compiled)
    plan_path = f"{directory}/plan.json"
    with open(plan_path, "rb") as f:
        plan = orjson.loads(f.read())
    compact = compact_plan(plan)
    with open(plan_path, "wb") as f:
        f.write(orjson.dumps(compact))
    return frame_size(plan), frame_size(compact)


def compact_locals(compiled: Any) -> Any:
    """The compiled bundle with its locals renumbered, in this process (tests, the child below)."""
    with tempfile.TemporaryDirectory(prefix="deployguard-plan-") as tmp:
        save_renumbered(compiled, tmp)
        return _interpreter().load_bundle(tmp)


# Renumbered plans by the hash of what was compiled: a revision is renumbered once per process.
_renumbered_plans: dict[str, tuple[bytes, bytes]] = {}


async def compile_in_child(bundle: PolicyBundle, timeout: float = 60.0) -> Any | None:
    """``bundle`` compiled with its locals renumbered (by the child), or None when not renumbered.

    Raises PolicyLoadError when rego-cpp crashed the child on the revision (see the module's
    crash check): such a revision must not be compiled in the calling process."""
    spec = orjson.dumps({"revision": bundle.revision, "modules": bundle.modules, "data": bundle.data})
    key = hashlib.sha256(spec).hexdigest()
    with tempfile.TemporaryDirectory(prefix="deployguard-plan-") as tmp:
        out = Path(tmp) / "bundle"
        cached = _renumbered_plans.get(key)
        if cached is None:
            cached = await _run_child(spec, Path(tmp), out, timeout, bundle.revision)
            if cached is None:
                return None
            if len(_renumbered_plans) >= 4:
                _renumbered_plans.pop(next(iter(_renumbered_plans)))
            _renumbered_plans[key] = cached
        else:
            out.mkdir()
            (out / "plan.json").write_bytes(cached[0])
            (out / "data.json").write_bytes(cached[1])
        try:
            return _interpreter().load_bundle(str(out))
        except regopy.RegoError as exc:
            log.info("policy plan kept as compiled (the renumbered plan does not load: %s)", exc)
            return None


async def _run_child(spec: bytes, tmp: Path, out: Path, timeout: float, revision: str) -> tuple[bytes, bytes] | None:
    """Run this module as a child on ``spec``; the plan.json and data.json it wrote, or None.

    Raises PolicyLoadError when rego-cpp crashed the child before it decided the probe input.
    """
    (tmp / "spec.json").write_bytes(spec)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "webhook.engines.renumbering", str(tmp / "spec.json"), str(out)]
    try:
        child = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
    except OSError as exc:
        log.warning("policy plan kept as compiled, and not checked for crashes (the child did not start: %s)", exc)
        return None
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(), timeout)
    except TimeoutError:
        child.kill()
        await child.wait()
        log.info("policy plan kept as compiled (renumbering took over %g s)", timeout)
        return None
    if child.returncode != 0:
        reason = (stderr.decode(errors="replace").strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        code = child.returncode or 0
        if code < 0 and SURVIVED.encode() not in stdout:
            raise PolicyLoadError(
                f"policy revision {revision} crashed rego-cpp ({signal.Signals(-code).name}) while compiling or "
                f"deciding the probe input: {reason}; refused, so that it cannot take the webhook down "
                "(opa check on the policies usually names the mistake)"
            )
        log.info("policy plan kept as compiled (locals not renumbered): %s", reason)
        return None
    return (out / "plan.json").read_bytes(), (out / "data.json").read_bytes()


def renumbered_if_equal(compact: Any | None, compiled: Any, probe: Any) -> Any:
    """The renumbered bundle when it decides the probe input as the compiled one does."""
    if compact is None:
        return compiled
    try:
        same = _evaluate(_interpreter(), compact, PROBE_INPUT) == probe
    except EngineError:
        same = False
    if not same:
        log.warning("renumbered policy plan decides the probe input differently; using the plan as compiled")
        return compiled
    return compact


def main(argv: list[str]) -> int:
    """The child: compile SPEC's modules and data, decide the probe input, save the renumbered plan to OUT.

    Exit status 0: OUT holds plan.json and data.json; anything else: the reason is on
    stderr and the caller serves the plan as compiled, unless a signal ended the child
    before it printed SURVIVED (rego-cpp crashed on the revision: the caller refuses it).
    """
    spec_path, out = argv
    spec = orjson.loads(Path(spec_path).read_bytes())
    modules = tuple((path, source) for path, source in spec["modules"])
    bundle = PolicyBundle(revision=spec["revision"], modules=modules, tests=(), data=spec["data"])
    try:
        compiled = compile_bundle(bundle)
        probe = _evaluate(_interpreter(), compiled, PROBE_INPUT)
    except (PolicyLoadError, EngineError) as exc:
        print(f"not compiled: {exc}", file=sys.stderr)  # the serving process finds and reports the same
        return 4
    print(SURVIVED, flush=True)
    try:
        before, after = save_renumbered(compiled, out)
    except UnsupportedPlan as exc:
        print(f"not renumbered: {exc}", file=sys.stderr)
        return 3
    # Loaded here first, as the serving process will load it: rego-cpp aborts loading a saved
    # plan with some string escapes (a literal "\u0085" in a module) that compiled fine.
    if renumbered_if_equal(_interpreter().load_bundle(out), compiled, probe) is compiled:
        print("not renumbered: the renumbered plan decides the probe input differently", file=sys.stderr)
        return 3
    print(f"frame of {before} -> {after} locals")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
