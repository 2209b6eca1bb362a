"""Operand checks and text conversions the wasm engine's host built-ins share.

A wrong operand type raises TypeError with OPA's wording (``operand must be a string``);
the engine reports it as an error, so a deny.
"""

from __future__ import annotations

import codecs
from typing import Any

INT64 = 2**63


def string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: operand must be a string, got {type(value).__name__}")
    return value


def strings(value: Any, what: str) -> list[str]:
    """A string, or an array (or set) of strings, as a list."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{what}: operand must be a string, an array or a set of strings")
    return values


def text_of_bytes(raw: bytes) -> str:
    """The bytes as text; each byte that is not part of valid UTF-8 becomes U+FFFD, as Go's
    JSON encoding shows OPA's result."""
    return raw.decode("utf-8", errors="deployguard-per-byte")


codecs.register_error("deployguard-per-byte", lambda e: ("\ufffd" * (e.end - e.start), e.end))  # type: ignore[attr-defined]
