"""Policy engines: one small interface, one module per implementation.

An engine compiles a :class:`~webhook.policy_bundle.PolicyBundle` once per revision
and evaluates ``data.deployguard.decision`` for an input document. Any failure to
produce a decision is an :class:`~webhook.errors.EngineError`: never an allow.
"""

from __future__ import annotations

from typing import Any, Protocol

from webhook.config import PolicySettings
from webhook.policy_bundle import PolicyBundle

DECISION_PATH = ("deployguard", "decision")

# A minimal well-formed input: a new revision must produce a decision for it before
# it replaces the one serving (catches a renamed package or an always-undefined rule).
PROBE_INPUT: dict[str, Any] = {
    "request": {
        "operation": "CREATE",
        "dry_run": True,
        "group": "",
        "version": "v1",
        "kind": "Pod",
        "namespace": "default",
        "name": "probe",
        "user": {"username": "deployguard-probe", "groups": []},
    },
    "workload": {
        "kind": "Pod",
        "labels": {},
        "annotations": {},
        "template_labels": {},
        "template_annotations": {},
        "replicas": None,
    },
    "change": {"type": "no-op"},
    "images": [],
    "facts": {},
}


class PolicyEngine(Protocol):
    """What the reviewer needs from a Rego engine."""

    name: str

    async def load(self, bundle: PolicyBundle) -> None:
        """Compile ``bundle`` and serve it from now on; raise PolicyLoadError and keep the old one."""

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        """Return the decision document, or raise EngineError."""

    async def ready(self) -> tuple[bool, str]:
        """Whether a revision is loaded and the engine reachable, with a reason if not."""

    @property
    def revision(self) -> str:
        """The revision being served ("" before the first load)."""

    async def close(self) -> None:
        """Release connections."""


def make_engine(settings: PolicySettings) -> PolicyEngine:
    """The engine chosen in configuration."""
    if settings.engine == "opa":
        from webhook.engines.opa import OpaEngine

        return OpaEngine(settings.opa_url)
    if settings.engine == "wasm":
        from webhook.engines.wasm import WasmEngine

        return WasmEngine(settings.opa_binary)
    from webhook.engines.embedded import EmbeddedEngine

    return EmbeddedEngine()


def make_offline_engine(settings: PolicySettings) -> PolicyEngine:
    """The in-process engine for ``check`` and policy cases: wasm when configured, else rego-cpp
    (for "opa" too: no server is needed offline, and the engines decide alike)."""
    if settings.engine == "wasm":
        from webhook.engines.wasm import WasmEngine  # wasmtime only when asked for

        return WasmEngine(settings.opa_binary)
    from webhook.engines.embedded import EmbeddedEngine

    return EmbeddedEngine()
