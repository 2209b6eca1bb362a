"""``semver.compare`` and ``semver.is_valid`` for the wasm engine, as OPA's semver package reads versions."""

from __future__ import annotations

import re
from typing import Any

from webhook.engines.wasm_operands import INT64, string

# semver: MAJOR.MINOR.PATCH without leading zeros, an optional leading "v" (OPA strips it),
# -pre.release identifiers (numeric ones without leading zeros), +build metadata.
_NUMBER = r"(0|[1-9]\d*)"
_PRERELEASE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    rf"v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def _semver_key(text: str) -> tuple[tuple[int, int, int], list[str] | None]:
    match = _SEMVER.fullmatch(text)
    if match is None or any(int(n) >= INT64 for n in match.groups()[:3]):
        raise ValueError(f"semver: invalid version {text!r}")
    major, minor, patch, pre, _build = match.groups()
    return (int(major), int(minor), int(patch)), (pre.split(".") if pre else None)


def _compare_prerelease(left: list[str] | None, right: list[str] | None) -> int:
    if left is None or right is None:
        return (left is None) - (right is None)  # a release sorts after its pre-releases
    for a, b in zip(left, right, strict=False):
        if a == b:
            continue
        if a.isdigit() and b.isdigit():
            return -1 if int(a) < int(b) else 1
        if a.isdigit() != b.isdigit():
            return -1 if a.isdigit() else 1  # numeric identifiers sort first
        return -1 if a < b else 1
    return (len(left) > len(right)) - (len(left) < len(right))


def semver_compare(args: list[Any]) -> int:
    (left, left_pre), (right, right_pre) = (_semver_key(string(a, "semver.compare")) for a in args)
    if left != right:
        return -1 if left < right else 1
    return _compare_prerelease(left_pre, right_pre)


def semver_is_valid(args: list[Any]) -> bool:
    try:
        _semver_key(args[0]) if isinstance(args[0], str) else None
    except ValueError:
        return False
    return isinstance(args[0], str)
