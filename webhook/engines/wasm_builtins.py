"""The built-ins OPA's Wasm compiler leaves to the host, as the wasm engine provides them.

``opa build -t wasm`` compiles most built-ins into the module and imports the rest (85 in
OPA 1.22), so the host must compute those exactly as OPA does. The default policies need
``sprintf`` (wasm_sprintf.py) and ``urlquery.encode``; the others here are the ones
admission policies commonly call (hashes and HMACs, prefixes, semantic versions in
wasm_semver.py, byte and SI units in wasm_units.py, URL queries in wasm_urlquery.py, CIDR
validity, ``object.subset`` in wasm_subset.py) and the ``time.*`` family change windows
need (wasm_time.py); operand checks shared by all are in wasm_operands.py. A policy
calling one that is not here is refused at load with its name.
tests/integration/test_wasm_engine.py holds each to a real ``opa eval``.

Built-ins take their arguments as JSON values (a set arrives as an array) and return one;
a wrong type or a bad value raises, which the engine reports as an error (a deny), as
OPA does with strict built-in errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from functools import partial
from typing import Any

from webhook.engines.host_steps import HostSteps, charged
from webhook.engines.wasm_operands import string, strings, text_of_bytes
from webhook.engines.wasm_semver import semver_compare, semver_is_valid
from webhook.engines.wasm_sprintf import go_sprintf
from webhook.engines.wasm_subset import object_subset
from webhook.engines.wasm_time import EvaluationClock, time_builtins
from webhook.engines.wasm_units import units_parse, units_parse_bytes
from webhook.engines.wasm_urlquery import query_decode, query_encode, query_encode_object, query_object

HostBuiltin = Callable[[list[Any]], Any]


def _sprintf(args: list[Any]) -> str:
    template, values = args
    if not isinstance(values, list):
        raise TypeError("sprintf: operand 2 must be an array")
    return go_sprintf(string(template, "sprintf"), values)


def _hash(algorithm: str) -> HostBuiltin:
    return lambda args: hashlib.new(algorithm, string(args[0], f"crypto.{algorithm}").encode()).hexdigest()


def _hex_decode(args: list[Any]) -> str:
    return text_of_bytes(bytes.fromhex(string(args[0], "hex.decode")))


def _indexof_n(steps: HostSteps, args: list[Any]) -> list[int]:
    """Every index (in characters, overlapping) where the needle starts; each one a step."""
    haystack, needle = string(args[0], "indexof_n"), string(args[1], "indexof_n")
    if not needle:
        raise ValueError("indexof_n: empty search character")
    found, start = [], 0
    while (index := haystack.find(needle, start)) != -1:
        steps.take(1, "indexof_n")
        found.append(index)
        start = index + 1
    return found


def _any_match(test: Callable[[str, str], bool], what: str) -> HostBuiltin:
    def match(args: list[Any]) -> bool:
        return any(test(s, b) for s in strings(args[0], what) for b in strings(args[1], what))

    return match


def _hmac(algorithm: str) -> HostBuiltin:
    def digest(args: list[Any]) -> str:
        message, key = (string(a, f"crypto.hmac.{algorithm}").encode() for a in args[:2])
        return hmac.new(key, message, algorithm).hexdigest()

    return digest


def _glob_quote_meta(args: list[Any]) -> str:
    """gobwas/glob's ``QuoteMeta``: a backslash before each of ``*?\\[]{}``."""
    return "".join("\\" + c if c in "*?\\[]{}" else c for c in string(args[0], "glob.quote_meta"))


def _cidr_is_valid(args: list[Any]) -> bool:
    """Go's ``net.ParseCIDR`` succeeds: a strict address (IPv4 without leading zeros, no IPv6
    zone) and a decimal prefix length (leading zeros allowed) within the address's bits."""
    text = args[0]
    if not isinstance(text, str) or "/" not in text:
        return False
    address, _, prefix = text.partition("/")
    if "%" in address or not prefix.isascii() or not prefix.isdigit():
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return int(prefix) <= parsed.max_prefixlen


def host_builtins(clock: EvaluationClock, steps: HostSteps) -> dict[str, HostBuiltin]:
    """Every built-in the wasm engine provides to a module, by OPA's name; ``time.now_ns``
    reads ``clock``, and the ones that loop over their input take ``steps``."""
    return {
        "sprintf": charged(steps, "sprintf", _sprintf, 4),
        "urlquery.encode": query_encode,
        "urlquery.decode": charged(steps, "urlquery.decode", query_decode, 16),
        "urlquery.decode_object": charged(steps, "urlquery.decode_object", query_object, 2),
        "urlquery.encode_object": charged(steps, "urlquery.encode_object", query_encode_object, 64),
        "crypto.hmac.md5": _hmac("md5"),
        "crypto.hmac.sha1": _hmac("sha1"),
        "crypto.hmac.sha256": _hmac("sha256"),
        "crypto.hmac.sha512": _hmac("sha512"),
        "crypto.hmac.equal": lambda args: hmac.compare_digest(
            string(args[0], "crypto.hmac.equal").encode(), string(args[1], "crypto.hmac.equal").encode()
        ),
        "glob.quote_meta": charged(steps, "glob.quote_meta", _glob_quote_meta, 64),
        "net.cidr_is_valid": _cidr_is_valid,
        "object.subset": object_subset,
        "crypto.md5": _hash("md5"),
        "crypto.sha1": _hash("sha1"),
        "crypto.sha256": _hash("sha256"),
        "hex.encode": lambda args: string(args[0], "hex.encode").encode().hex(),
        "hex.decode": charged(steps, "hex.decode", _hex_decode, 16),  # invalid UTF-8 costs a call per byte
        "base64url.encode_no_pad": lambda args: (
            base64.urlsafe_b64encode(string(args[0], "base64url.encode_no_pad").encode()).decode().rstrip("=")
        ),
        "indexof_n": partial(_indexof_n, steps),
        "strings.count": lambda args: string(args[0], "strings.count").count(string(args[1], "strings.count")),
        "strings.any_prefix_match": _any_match(str.startswith, "strings.any_prefix_match"),
        "strings.any_suffix_match": _any_match(str.endswith, "strings.any_suffix_match"),
        "semver.is_valid": semver_is_valid,
        "semver.compare": semver_compare,
        "units.parse_bytes": units_parse_bytes,
        "units.parse": units_parse,
        **time_builtins(clock, steps),
    }


# For calls outside an evaluation (the tests hold each to opa eval): steps unbounded.
HOST_BUILTINS = host_builtins(EvaluationClock(), HostSteps(limit=2**62))
