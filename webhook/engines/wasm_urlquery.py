"""``urlquery.*`` for the wasm engine, as Go's net/url escapes and parses queries."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

from webhook.engines.wasm_operands import string, text_of_bytes

_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


def _query_unescape(text: str) -> str:
    """Go's ``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte (two hex digits, or an error)."""
    if bad := _BAD_ESCAPE.search(text):
        raise ValueError(f"invalid URL escape {text[bad.start() : bad.start() + 3]!r}")
    raw = unquote_to_bytes(text.replace("+", " "))
    return text_of_bytes(raw)


def query_decode(args: list[Any]) -> str:
    return _query_unescape(string(args[0], "urlquery.decode"))


def query_object(args: list[Any]) -> dict[str, list[str]]:
    """Go's ``url.ParseQuery``: ``&``-separated ``key=value`` pairs, each unescaped; a ``;``
    is an error (Go 1.17 on), a pair without ``=`` has the empty value."""
    parsed: dict[str, list[str]] = {}
    failure: ValueError | None = None
    for pair in string(args[0], "urlquery.decode_object").split("&"):
        if not pair:
            continue
        if ";" in pair:
            failure = failure or ValueError("invalid semicolon separator in query")
            continue
        key, _, value = pair.partition("=")
        try:
            parsed.setdefault(_query_unescape(key), []).append(_query_unescape(value))
        except ValueError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return parsed


def query_encode_object(args: list[Any]) -> str:
    """Go's ``url.Values.Encode``: keys sorted, each value ``key=value``, both query-escaped."""
    values = args[0]
    if not isinstance(values, dict):
        raise TypeError("urlquery.encode_object: operand 1 must be an object")
    pairs = []
    for key in sorted(values):
        value = values[key]
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
            raise ValueError("urlquery.encode_object: values must be string, array[string], or set[string]")
        pairs += [f"{quote_plus(key, safe='')}={quote_plus(v, safe='')}" for v in listed]
    return "&".join(pairs)


def query_encode(args: list[Any]) -> str:
    """Go's ``url.QueryEscape``."""
    return quote_plus(string(args[0], "urlquery.encode"), safe="")
