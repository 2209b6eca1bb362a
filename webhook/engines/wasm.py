"""The wasm engine: the policies compiled by OPA itself (``opa build -t wasm``), run in-process.

OPA's own compiler, so OPA's semantics (the differential tests hold the decisions to a
real OPA server), and compiled code rather than an interpreter: a memo miss costs a
quarter to a third of rego-cpp's (README, Performance). The price is the ``opa`` binary at load time
(``policy.opa_binary``) and two built-ins computed in Python (engines/wasm_builtins.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from webhook.engines import DECISION_PATH, PROBE_INPUT
from webhook.engines.host_steps import HostSteps
from webhook.engines.wasm_builtins import host_builtins
from webhook.engines.wasm_runtime import FUEL_PER_EVALUATION, WasmError, WasmPolicy
from webhook.engines.wasm_time import EvaluationClock
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import PolicyBundle

ENTRYPOINT = "/".join(DECISION_PATH)
COMPILE_TIMEOUT_SECONDS = 120


def compile_wasm(bundle: PolicyBundle, opa_binary: str) -> bytes:
    """``policy.wasm`` for the decision entrypoint of ``bundle``'s modules (data is given at load)."""
    with tempfile.TemporaryDirectory(prefix="deployguard-wasm-") as work:
        source = Path(work, "src")
        for relative, text in bundle.modules:
            if Path(relative).is_absolute() or ".." in Path(relative).parts:
                raise PolicyLoadError(f"policy module path {relative!r} leaves the policy directory")
            target = source / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        output = Path(work, "bundle.tar.gz")
        try:
            built = subprocess.run(
                [opa_binary, "build", "-t", "wasm", "-e", ENTRYPOINT, "-o", str(output), str(source)],
                capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PolicyLoadError(f"cannot run {opa_binary} build -t wasm (policy.opa_binary): {exc}") from None
        if built.returncode != 0:
            raise PolicyLoadError(f"opa build -t wasm refused revision {bundle.revision}: {built.stderr.strip()}")
        with tarfile.open(output) as archive:
            try:
                member = archive.extractfile("/policy.wasm")
            except KeyError:
                member = None
            if member is None:
                raise PolicyLoadError("opa build -t wasm wrote no policy.wasm")
            return member.read()


@dataclass(frozen=True)
class _Revision:
    """A compiled revision: the module, its decision entrypoint, and its clock (time.now_ns
    gives one instant per evaluation; each revision has its own, so loading one while
    another serves cannot move the serving one's)."""

    policy: WasmPolicy
    entrypoint: int
    clock: EvaluationClock
    steps: HostSteps  # the work its host built-ins may do per evaluation (host_steps.py)

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        self.clock.start()
        self.steps.start()
        try:
            results = orjson.loads(self.policy.evaluate(self.entrypoint, orjson.dumps(policy_input)))
        except WasmError as exc:
            raise EngineError(f"the wasm engine failed: {exc}") from None
        if not results or "result" not in results[0]:
            raise EngineError(f"{ENTRYPOINT} is undefined for this input")
        value = results[0]["result"]
        if not isinstance(value, dict):
            raise EngineError(f"data.deployguard.decision must be an object, got {type(value).__name__}")
        return value


class WasmEngine:
    name = "wasm"

    def __init__(self, opa_binary: str = "opa", fuel: int = FUEL_PER_EVALUATION) -> None:
        self._opa_binary = opa_binary
        self._fuel = fuel  # an evaluation doing more work is stopped (an error: a deny)
        self._serving: _Revision | None = None
        self._revision = ""
        self._lock = threading.Lock()  # one store: evaluations must not interleave

    @property
    def revision(self) -> str:
        return self._revision

    async def load(self, bundle: PolicyBundle) -> None:
        """Compile ``bundle`` (opa build, then wasmtime) and serve it once it decides the probe input."""
        compiled = await asyncio.to_thread(self._prepare, bundle)
        with self._lock:
            self._serving, self._revision = compiled, bundle.revision

    def _prepare(self, bundle: PolicyBundle) -> _Revision:
        wasm = compile_wasm(bundle, self._opa_binary)
        clock, steps = EvaluationClock(), HostSteps()
        try:
            policy = WasmPolicy(wasm, orjson.dumps(bundle.data), host_builtins(clock, steps), self._fuel)
        except WasmError as exc:
            raise PolicyLoadError(f"policy revision {bundle.revision} cannot run on the wasm engine: {exc}") from None
        entrypoint = policy.entrypoints.get(ENTRYPOINT)
        if entrypoint is None:
            raise PolicyLoadError(f"policy revision {bundle.revision} has no {ENTRYPOINT} entrypoint")
        compiled = _Revision(policy, entrypoint, clock, steps)
        try:
            compiled.decide(PROBE_INPUT)
        except EngineError as exc:
            raise PolicyLoadError(f"policy revision {bundle.revision} compiles but cannot decide: {exc}") from None
        return compiled

    def evaluate_sync(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._serving is None:
                raise EngineError("no policy revision is loaded")
            return self._serving.decide(policy_input)

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        return self.evaluate_sync(policy_input)

    async def ready(self) -> tuple[bool, str]:
        return (True, "") if self._serving is not None else (False, "no policy revision compiled yet")

    async def close(self) -> None:
        return None
