"""The shipped policy case files pass on the real OPA server and on the wasm engine too,
not only on rego-cpp.

``deployguard policy test`` runs the cases on the embedded engine; the chart serves with
OPA (or the wasm engine). A case whose decision differs between the engines is a rego-cpp
gap (or an OPA one, or a wasm host built-in) that would otherwise reach a cluster unseen.
"""

from __future__ import annotations

import pytest

from tests.conftest import POLICIES, REPO, tool
from tests.integration.conftest import OpaServer
from webhook.config import Settings
from webhook.engines.embedded import EmbeddedEngine
from webhook.engines.opa import OpaEngine
from webhook.engines.wasm import WasmEngine
from webhook.policy_bundle import load_bundle
from webhook.policy_cases import load_cases, run_cases

pytestmark = pytest.mark.integration


async def test_shipped_cases_pass_on_opa_and_wasm_and_agree_with_the_embedded_engine(opa_server: OpaServer) -> None:
    bundle = load_bundle(POLICIES)
    cases = load_cases(REPO / "policy-cases")
    opa, embedded, wasm = OpaEngine(opa_server.url), EmbeddedEngine(), WasmEngine(str(tool("opa")))
    try:
        for engine in (opa, embedded, wasm):
            await engine.load(bundle)
        on_opa = await run_cases(opa, Settings(), cases)
        on_embedded = await run_cases(embedded, Settings(), cases)
        on_wasm = await run_cases(wasm, Settings(), cases)
    finally:
        await opa.close()
    assert len(on_opa) == len(cases) > 20
    assert [(r.case.source, r.problems) for r in on_opa if not r.passed] == []
    assert [r.passed for r in on_opa] == [r.passed for r in on_embedded]
    assert [(r.case.source, r.problems) for r in on_wasm if not r.passed] == []
