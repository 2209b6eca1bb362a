"""The chart carries a copy of policies/ (helm reads files inside the chart only)."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def test_chart_policies_match_the_repository() -> None:
    spec = importlib.util.spec_from_file_location("sync", REPO / "scripts" / "sync_chart_policies.py")
    assert spec and spec.loader
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    source, copy = sync.wanted(sync.SOURCE), sync.wanted(sync.TARGET)
    stale = sorted(set(source) ^ set(copy)) + sorted(k for k in source.keys() & copy.keys() if source[k] != copy[k])
    hint = "run: python3 scripts/sync_chart_policies.py"
    assert not stale, f"charts/deployguard/policies differs from policies/ in {stale}; {hint}"
    assert any(name.endswith(".rego") for name in copy) and "data.yaml" in copy
