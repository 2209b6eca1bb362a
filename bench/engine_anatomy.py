#!/usr/bin/env python3
"""Where a memo miss goes inside rego-cpp, the embedded engine: the evidence behind "why".

For two Deployments made unique as bench/decision_time.py does (the denied example,
examples/admission-review.json, and a compliant one: examples/deployment-pinned.yaml):

  * time p50 of giving rego-cpp the input and of the query itself, on the renumbered
    plan that serves (webhook/engines/renumbering.py);
  * what the query runs: rego-cpp's debug log names every VM statement it executes and
    every call it makes, so one traced query is counted by statement type and by
    built-in (the log goes to file descriptor 1, which is pointed at a file meanwhile);
  * what single operations cost inside this bundle: an empty query, one loop step, and
    one call each of is_string, concat, regex.match and sprintf (40 calls in a
    comprehension, less the bare loop, divided by 40).

A report: it prints figures and asserts nothing.

    .venv/bin/python bench/engine_anatomy.py [--repeat 400]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import dataclasses
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from regopy import rego_shared

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.decision_time import reviewer_for, unique  # noqa: E402
from tests.factories import admission_review  # noqa: E402
from webhook.admission import parse_review  # noqa: E402
from webhook.config import Settings  # noqa: E402
from webhook.engines.embedded import ENTRYPOINT, EmbeddedEngine, _interpreter, compile_bundle, set_input  # noqa: E402
from webhook.engines.renumbering import compact_locals  # noqa: E402
from webhook.policy_bundle import load_bundle  # noqa: E402

# One module of probes (rule names must not be built-in names: rego-cpp aborts the
# process on a rule named `concat`), compiled with the repository's policies so that every probe runs
# on the same frame size and rule set as the decision does.
PROBES = """package deployguard_anatomy
import rego.v1
empty := 1
loop := count([i | some i in numbers.range(1, 40)])
call_is_string := count([i | some i in numbers.range(1, 40); is_string(input.request.kind)])
call_concat := count([s | some i in numbers.range(1, 40); s := concat("", [input.request.kind, "x"])])
call_regex_match := count([i | some i in numbers.range(1, 40); regex.match(`^[ !#-Z^-~\\[\\]]*$`, input.request.kind)])
call_sprintf := count([s | some i in numbers.range(1, 40); s := sprintf("%s %d", [input.request.kind, i])])
"""
PROBE_RULES = ("empty", "loop", "call_is_string", "call_concat", "call_regex_match", "call_sprintf")
STATEMENT = re.compile(r"^\s*\d+\s+([A-Za-z]+)\(")
BUILTIN_CALL = re.compile(r"CallStmt\(func_name=([^,]+),")
_libc = ctypes.CDLL(None)


def p50_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def query(runner: Any, bundle: Any, entrypoint: str) -> None:
    rego_shared.rego_free_output(rego_shared.rego_bundle_query_entrypoint(runner._impl, bundle._impl, entrypoint))


def traced_query(runner: Any, bundle: Any) -> str:
    """rego-cpp's debug log of one decision query (it writes to fd 1)."""
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            rego_shared.rego_set_log_level(runner._impl, rego_shared.LogLevel.DEBUG)
            query(runner, bundle, ENTRYPOINT)
        finally:
            rego_shared.rego_set_log_level(runner._impl, rego_shared.LogLevel.OUTPUT)
            _libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        return log.read().decode(errors="replace")


def counts(log: str) -> tuple[collections.Counter[str], collections.Counter[str]]:
    statements: collections.Counter[str] = collections.Counter()
    builtins: collections.Counter[str] = collections.Counter()
    for line in log.splitlines():
        match = STATEMENT.match(line)
        if match:
            statements[match.group(1)] += 1
        call = BUILTIN_CALL.search(line)
        if call and not call.group(1).startswith("g0."):
            builtins[call.group(1)] += 1
    return statements, builtins


def examples() -> dict[str, bytes]:
    pinned = admission_review(yaml.safe_load((REPO / "examples/deployment-pinned.yaml").read_text()))
    return {
        "denied (examples/admission-review.json)": (REPO / "examples/admission-review.json").read_bytes(),
        "compliant (examples/deployment-pinned.yaml)": orjson.dumps(pinned),
    }


async def main_async(repeat: int) -> None:
    bundle = load_bundle(REPO / "policies")
    engine = EmbeddedEngine()
    await engine.load(bundle)
    reviewer = reviewer_for(engine, Settings())
    runner = _interpreter()
    for name, body in examples().items():
        outcome = await reviewer.review(parse_review(orjson.loads(unique(body, 1))))
        policy_input = outcome.policy_input
        set_ms = p50_ms(lambda p=policy_input: set_input(runner, p), repeat)  # type: ignore[misc]
        set_input(runner, policy_input)
        query_ms = p50_ms(lambda: query(runner, engine._bundle, ENTRYPOINT), repeat)
        statements, builtins = counts(traced_query(runner, engine._bundle))
        total = sum(statements.values())
        print(f"\n{name}: decision {'allowed' if outcome.decision.allowed else 'denied'}")
        print(f"  set_input p50 {set_ms:.3f} ms, query p50 {query_ms:.3f} ms")
        print(f"  {total} VM statements ({query_ms * 1000 / max(total, 1):.2f} µs each on average), "
              f"{sum(builtins.values())} built-in calls")  # fmt: skip
        print("  statements: " + ", ".join(f"{k} {v}" for k, v in statements.most_common(10)))
        print("  built-ins:  " + ", ".join(f"{k} {v}" for k, v in builtins.most_common()))

    probed = dataclasses.replace(bundle, modules=(*bundle.modules, ("anatomy.rego", PROBES)))
    entrypoints = tuple(f"deployguard_anatomy/{rule}" for rule in PROBE_RULES)
    compiled = compact_locals(compile_bundle(probed, entrypoints=entrypoints))
    set_input(runner, policy_input)
    cost = {rule: p50_ms(lambda e=entry: query(runner, compiled, e), repeat)  # type: ignore[misc]
            for rule, entry in zip(PROBE_RULES, entrypoints, strict=True)}  # fmt: skip
    step = (cost["loop"] - cost["empty"]) / 40
    print("\nsingle operations in this bundle (µs):")
    print(f"  empty query {cost['empty'] * 1000:.1f}, loop step {step * 1000:.2f}")
    for rule in PROBE_RULES[2:]:
        print(f"  {rule.removeprefix('call_'):12} {(cost[rule] - cost['loop']) / 40 * 1000:6.2f} per call")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=400)
    asyncio.run(main_async(parser.parse_args().repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
