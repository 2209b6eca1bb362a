"""Compile a policy revision and save it with renumbered locals (run as a child process).

    python -m webhook.engines.renumber_child SPEC.json OUT_DIR

SPEC holds the revision's modules and data as webhook.engines.embedded wrote them. The
child exists so that rego-cpp's save, which keeps its allocator's memory for the life
of the process, runs in a process that ends right after (see renumbered_in_child).
Exit status 0: OUT_DIR holds plan.json and data.json; anything else: the reason is on
stderr and the caller serves the plan as compiled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from webhook.engines.embedded import compile_bundle, save_renumbered
from webhook.engines.plan_locals import UnsupportedPlan
from webhook.errors import PolicyLoadError
from webhook.policy_bundle import PolicyBundle


def main(argv: list[str]) -> int:
    spec_path, out = argv
    spec = orjson.loads(Path(spec_path).read_bytes())
    modules = tuple((path, source) for path, source in spec["modules"])
    bundle = PolicyBundle(revision=spec["revision"], modules=modules, tests=(), data=spec["data"])
    try:
        before, after = save_renumbered(compile_bundle(bundle), out)
    except (UnsupportedPlan, PolicyLoadError) as exc:
        print(f"not renumbered: {exc}", file=sys.stderr)
        return 3
    print(f"frame of {before} -> {after} locals")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
