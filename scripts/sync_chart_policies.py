#!/usr/bin/env python3
"""Copy the repository's policies/ into charts/deployguard/policies/.

Helm can only read files inside the chart, so the chart carries a copy of the
policy modules (tests left out) and data.yaml. tests/integration/test_helm_chart.py
fails when the copy and policies/ differ; run this script to bring it back in step.
Standard library only.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "policies"
TARGET = REPO / "charts" / "deployguard" / "policies"


def wanted(directory: Path) -> dict[str, bytes]:
    """The files the chart ships: Rego modules without their tests, and data files."""
    found: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(directory).as_posix()
        is_module = path.suffix == ".rego" and not path.name.endswith("_test.rego")
        if is_module or path.name == "data.yaml":
            found[rel] = path.read_bytes()
    return found


def main() -> int:
    source = wanted(SOURCE)
    if TARGET.exists():
        shutil.rmtree(TARGET)
    for rel, content in source.items():
        out = TARGET / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
    print(f"copied {len(source)} policy files to {TARGET.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
