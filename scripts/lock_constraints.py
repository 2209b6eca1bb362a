#!/usr/bin/env python3
"""Write constraints.txt: exact versions of deployguard's runtime dependency closure.

The container image installs with ``pip install --constraint constraints.txt .`` so
that a rebuild gets the versions that were tested. Run it with the project's venv
after changing ``dependencies`` in pyproject.toml:

    .venv/bin/python scripts/lock_constraints.py

tests/unit/test_dockerfile.py fails when a dependency has no pin here.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def closure(requirements: list[str]) -> dict[str, str]:
    """name -> installed version for the requirements and everything they need."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    pending = [(Requirement(r), frozenset[str]()) for r in requirements]
    while pending:
        req, _ = pending.pop()
        name = req.name.lower().replace("_", "-")
        extras = frozenset(req.extras)
        if name in found and extras <= found[name][1]:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} is not installed in {sys.prefix}; pip install -e . first") from None
        extras |= found.get(name, ("", frozenset[str]()))[1]
        found[name] = (dist.version, extras)
        for sub in dist.requires or []:
            subreq = Requirement(sub)
            marker = subreq.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in (extras or {""})):
                pending.append((subreq, frozenset()))
    return {name: version for name, (version, _) in found.items()}


def main() -> int:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = closure(project["dependencies"])
    lines = [
        "# Exact runtime versions for the container image (scripts/lock_constraints.py writes this file).",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    (REPO / "constraints.txt").write_text("\n".join(lines) + "\n")
    print(f"constraints.txt: {len(pins)} pins", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
