"""Shared fixtures, and the guard that makes an empty tier a failure.

Tiers are markers: unmarked tests are unit tests, ``integration`` tests start real
servers (OPA, registry, Prometheus), ``e2e`` tests drive a real kube-apiserver.
``scripts/test.sh`` sets ``DEPLOYGUARD_REQUIRE_TIERS`` so that a tier that silently
collects nothing fails the run instead of passing it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLES = REPO / "examples"
TIERS = ("integration", "e2e")


def tier_of(item: pytest.Item) -> str:
    for tier in TIERS:
        if item.get_closest_marker(tier):
            return tier
    return "unit"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    required = [t for t in os.environ.get("DEPLOYGUARD_REQUIRE_TIERS", "").split(",") if t]
    counts = {tier: 0 for tier in ("unit", *TIERS)}
    for item in items:
        counts[tier_of(item)] += 1
    empty = [t for t in required if counts.get(t, 0) == 0]
    if empty:
        raise pytest.UsageError(f"test tier(s) {empty} collected no tests (counts: {counts}); refusing to pass")


def tools_bin() -> Path:
    """Where scripts/provision_tools.py put the binaries."""
    env = os.environ.get("DEPLOYGUARD_TOOLS_BIN")
    if env:
        return Path(env)
    return Path(os.environ.get("DEPLOYGUARD_TOOLS_CACHE", Path.home() / ".cache/deployguard/tools")) / "bin"


def tool(name: str) -> Path:
    """A provisioned binary; a missing one fails the test with what to run (never a skip)."""
    path = tools_bin() / name
    if path.exists():
        return path
    found = shutil.which(name) if name == "opa" else None
    if found:
        return Path(found)
    pytest.fail(f"{name} is not provisioned in {tools_bin()}; run: python3 scripts/provision_tools.py")


@pytest.fixture(scope="session")
def policies_dir() -> Path:
    return POLICIES
