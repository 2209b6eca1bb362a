"""Renumber the locals of a compiled plan so that rego-cpp's frame stays small.

rego-cpp (regopy 1.5.2) runs a plan on one frame of ``local_count`` slots, where
``local_count`` is one more than the highest local index in the bundle, and the
compiler numbers locals across the whole bundle (about 2,200 for our policies). Every
built-in call copies that frame (the VM captures its state by value), so the cost of a
built-in call grows with the size of the *whole* bundle: most of an evaluation's time.

Functions share the one frame, so two functions may only share a local index when
that cannot change a result:

* a function never shares with a function that can be below it on the call stack
  (its callers' locals stay intact while it runs): each function gets its own range,
  placed after the ranges of every function that can call it (a longest path over
  the call graph, which has no cycles: Rego forbids recursion);
* every local a function reads has been written earlier in the same invocation on
  every path to the read (a definite-assignment check). Only then can a value left
  in a slot by another function never be observed. A plan that fails this check, or
  holds a statement this module does not know, is left as it is.

Locals 0 and 1 (input and data) keep their indices. The result is a plan with the
same statements, only other local indices; the differential tests compare the
decisions of both against OPA's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

# Per statement type: fields that hold a local index (ints) read, written, or both.
# Operands ({"type": "local", "value": n}) anywhere in a statement are reads.
_READS: dict[str, tuple[str, ...]] = {
    "ArrayAppendStmt": ("array",),
    "AssignVarOnceStmt": ("target",),  # a defined target must hold the same value
    "IsDefinedStmt": ("source",),
    "IsUndefinedStmt": ("source",),
    "ObjectInsertOnceStmt": ("object",),
    "ObjectInsertStmt": ("object",),
    "ResultSetAddStmt": ("value",),
    "ReturnLocalStmt": ("source",),
    "ScanStmt": ("source",),
    "SetAddStmt": ("set",),
}
_WRITES: dict[str, tuple[str, ...]] = {
    "ArrayAppendStmt": ("array",),
    "AssignIntStmt": ("target",),
    "AssignVarOnceStmt": ("target",),
    "AssignVarStmt": ("target",),
    "CallDynamicStmt": ("result",),
    "CallStmt": ("result",),
    "DotStmt": ("target",),
    "LenStmt": ("target",),
    "MakeArrayStmt": ("target",),
    "MakeNullStmt": ("target",),
    "MakeNumberIntStmt": ("target",),
    "MakeNumberRefStmt": ("target",),
    "MakeObjectStmt": ("target",),
    "MakeSetStmt": ("target",),
    "ObjectInsertOnceStmt": ("object",),
    "ObjectInsertStmt": ("object",),
    "ResetLocalStmt": ("target",),
    "SetAddStmt": ("set",),
}
# Statements with no local fields of their own (operands only, or nested blocks).
_OPERANDS_ONLY = frozenset(
    {"EqualStmt", "NotEqualStmt", "IsObjectStmt", "IsArrayStmt", "IsSetStmt", "BreakStmt", "BlockStmt", "NotStmt"}
)
_KNOWN = frozenset(_READS) | frozenset(_WRITES) | _OPERANDS_ONLY | {"ScanStmt"}
_FIXED = (0, 1)  # input and data


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object below ``node`` (blocks, statements, operands), depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


class UnsupportedPlan(Exception):
    """The plan holds something the analysis does not cover: keep it as it is."""


def _operands(stmt: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for value in stmt.values():
        if isinstance(value, dict) and value.get("type") == "local":
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict) and v.get("type") == "local")


def _nested_blocks(kind: str, stmt: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "BlockStmt":
        return list(stmt["blocks"])
    if kind in ("NotStmt", "ScanStmt"):
        return [stmt["block"]]
    return []


# Statements that never stop their block (a BlockStmt absorbs its blocks' failures).
_NEVER_FAIL = frozenset(
    {
        "ResetLocalStmt",
        "MakeArrayStmt",
        "MakeObjectStmt",
        "MakeSetStmt",
        "MakeNullStmt",
        "MakeNumberIntStmt",
        "MakeNumberRefStmt",
        "AssignIntStmt",
        "AssignVarStmt",
        "BlockStmt",
    }
)


def _assigned_first(blocks: Iterable[dict[str, Any]], params: set[int]) -> bool:
    """True when every local read in ``blocks`` is written before it on every path.

    A block runs its statements in order and stops at the first one that fails, so a
    write dominates the statements after it in its block and in the blocks nested
    below them. Sibling blocks (a function's, a BlockStmt's) run one after the other
    whatever the one before did, so a write there counts for the later siblings only
    when nothing before it in its block can fail. Other writes inside a nested block
    do not count after it.
    """

    def run(sequence: Iterable[dict[str, Any]], defined: set[int]) -> set[int] | None:
        """Check sibling blocks; the writes they all make for sure, or None on a bad read."""
        defined = set(defined)
        for block in sequence:
            certain = block_ok(block, defined)
            if certain is None:
                return None
            defined |= certain
        return defined

    def block_ok(block: dict[str, Any], defined: set[int]) -> set[int] | None:
        """Check one block; the writes of its prefix that cannot fail, or None on a bad read."""
        defined = set(defined)
        certain: set[int] = set()
        unconditional = True
        for item in block["stmts"]:
            kind, stmt = item["type"], item["stmt"]
            if kind not in _KNOWN:
                raise UnsupportedPlan(f"statement {kind}")
            reads = [stmt[f] for f in _READS.get(kind, ())] + [o["value"] for o in _operands(stmt)]
            if any(r not in defined for r in reads):
                return None
            writes = {stmt[f] for f in _WRITES.get(kind, ())}
            if kind == "BlockStmt":
                after = run(stmt["blocks"], defined)
                if after is None:
                    return None
                writes |= after - defined
            else:
                inner = set(defined)
                if kind == "ScanStmt":
                    inner |= {stmt["key"], stmt["value"]}
                for nested in _nested_blocks(kind, stmt):
                    if block_ok(nested, inner) is None:
                        return None
            defined |= writes
            unconditional = unconditional and kind in _NEVER_FAIL
            if unconditional:
                certain |= writes
        return certain

    return run(blocks, set(_FIXED) | params) is not None


def _local_fields(item: dict[str, Any]) -> tuple[str, ...]:
    """The fields of a statement that hold local indices (not operands)."""
    kind = item["type"]
    if kind not in _KNOWN:
        raise UnsupportedPlan(f"statement {kind}")
    fields = set(_READS.get(kind, ()) + _WRITES.get(kind, ()))
    if kind == "ScanStmt":
        fields |= {"key", "value"}
    return tuple(fields)


def _locals_of(node: Any, acc: set[int]) -> None:
    """Every local index used anywhere below ``node`` (statements and operands)."""
    for item in _nodes(node):
        if "stmt" in item:
            acc.update(item["stmt"][f] for f in _local_fields(item))
            acc.update(o["value"] for o in _operands(item["stmt"]))


def _renumber(node: Any, mapping: dict[int, int]) -> None:
    for item in _nodes(node):
        if "stmt" in item:
            stmt = item["stmt"]
            for f in _local_fields(item):
                stmt[f] = mapping[stmt[f]]
            for operand in _operands(stmt):
                operand["value"] = mapping[operand["value"]]


def _calls(node: Any, strings: list[str], funcs: dict[str, list[str]]) -> set[str]:
    """Names of the functions ``node`` may call (dynamic calls: every name the path can match)."""
    found: set[str] = set()
    for item in _nodes(node):
        if item.get("type") == "CallStmt" and item["stmt"]["func"] in funcs:
            found.add(item["stmt"]["func"])
        elif item.get("type") == "CallDynamicStmt":
            path = [strings[o["value"]] if o.get("type") == "string_index" else None for o in item["stmt"]["path"]]
            for name, fpath in funcs.items():
                n = min(len(path), len(fpath))
                if all(p is None or p == q for p, q in zip(path[1:n], fpath[1:n], strict=True)):
                    found.add(name)
    return found


def compact_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``plan`` (rego-cpp's saved plan.json) with compact local indices.

    Raises UnsupportedPlan when the plan cannot be shown safe to renumber.
    """
    plan = copy.deepcopy(plan)
    strings = [s["value"] for s in plan["static"]["strings"]]
    functions = plan["funcs"]["funcs"]
    paths = {f["name"]: list(f["path"]) for f in functions}
    owned: dict[str, list[int]] = {}
    for f in functions:
        if list(f["params"][:2]) != list(_FIXED):
            raise UnsupportedPlan(f"function {f['name']} does not take input and data first")
        if not _assigned_first(f["blocks"], set(f["params"])):
            raise UnsupportedPlan(f"function {f['name']} may read a local before writing it")
        used: set[int] = set(f["params"]) | {f["return"]}
        _locals_of(f["blocks"], used)
        owned[f["name"]] = sorted(used - set(_FIXED))
    callees = {f["name"]: _calls(f["blocks"], strings, paths) for f in functions}
    # Plans are the roots: their locals come first, functions after them.
    plan_locals: set[int] = set()
    for p in plan["plans"]["plans"]:
        _locals_of(p["blocks"], plan_locals)
    base = max(plan_locals | set(_FIXED)) + 1
    offset: dict[str, int] = {}

    def place(name: str, at: int, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise UnsupportedPlan(f"call cycle through {name}")
        if offset.get(name, -1) >= at:
            return
        offset[name] = at
        for callee in callees[name]:
            place(callee, at + len(owned[name]), (*stack, name))

    for name in paths:
        place(name, base, ())
    for f in functions:
        mapping = {i: i for i in _FIXED}
        mapping.update({old: offset[f["name"]] + k for k, old in enumerate(owned[f["name"]])})
        _renumber(f["blocks"], mapping)
        f["params"] = [mapping[p] for p in f["params"]]
        f["return"] = mapping[f["return"]]
    _numbers_first(plan)
    return plan


def _numbers_first(plan: dict[str, Any]) -> None:
    """Move the strings of MakeNumberRefStmt to the front of the string table.

    rego-cpp's bundle check compares a MakeNumberRefStmt's string index with the local
    count (not the string count), so with few locals a number literal at a high string
    index would fail the check although the index is valid.
    """
    sections = [plan["funcs"], plan["plans"]]
    refs = {n["stmt"]["index"] for n in _nodes(sections) if n.get("type") == "MakeNumberRefStmt"}
    strings = plan["static"]["strings"]
    order = sorted(refs) + [i for i in range(len(strings)) if i not in refs]
    new_index = {old: new for new, old in enumerate(order)}
    plan["static"]["strings"] = [strings[i] for i in order]
    for node in _nodes(sections):
        if node.get("type") == "string_index" and "stmt" not in node:
            node["value"] = new_index[node["value"]]
        elif node.get("type") == "MakeNumberRefStmt":
            node["stmt"]["index"] = new_index[node["stmt"]["index"]]


def frame_size(plan: dict[str, Any]) -> int:
    """rego-cpp's local_count for ``plan``: one more than its highest local index."""
    used: set[int] = set(_FIXED)
    for f in plan["funcs"]["funcs"]:
        used |= set(f["params"]) | {f["return"]}
        _locals_of(f["blocks"], used)
    for p in plan["plans"]["plans"]:
        _locals_of(p["blocks"], used)
    return max(used) + 1
