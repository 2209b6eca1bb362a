"""The built-ins OPA's Wasm compiler leaves to the host, as the wasm engine provides them.

``opa build -t wasm`` compiles most built-ins into the module and imports the rest (85 in
OPA 1.22), so the host must compute those exactly as OPA does. The default policies need
``sprintf`` (wasm_sprintf.py) and ``urlquery.encode``; the others here are the ones
admission policies commonly call (hashes and HMACs, prefixes, semantic versions, byte and
SI units, URL queries, CIDR validity) and the ``time.*`` family change windows need
(wasm_time.py). A policy calling one that is not here is refused at load with its name.
tests/integration/test_wasm_engine.py holds each to a real ``opa eval``.

Built-ins take their arguments as JSON values (a set arrives as an array) and return one;
a wrong type or a bad value raises, which the engine reports as an error (a deny), as
OPA does with strict built-in errors.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
import ipaddress
import math
import re
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

from webhook.engines.host_steps import HostSteps, charged
from webhook.engines.rego_value import RegoSet, rego_contains, rego_equal
from webhook.engines.wasm_sprintf import go_sprintf
from webhook.engines.wasm_time import EvaluationClock, time_builtins

HostBuiltin = Callable[[list[Any]], Any]
_INT64 = 2**63


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: operand must be a string, got {type(value).__name__}")
    return value


def _strings(value: Any, what: str) -> list[str]:
    """A string, or an array (or set) of strings, as a list."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{what}: operand must be a string, an array or a set of strings")
    return values


def _sprintf(args: list[Any]) -> str:
    template, values = args
    if not isinstance(values, list):
        raise TypeError("sprintf: operand 2 must be an array")
    return go_sprintf(_string(template, "sprintf"), values)


def _hash(algorithm: str) -> HostBuiltin:
    return lambda args: hashlib.new(algorithm, _string(args[0], f"crypto.{algorithm}").encode()).hexdigest()


def _hex_decode(args: list[Any]) -> str:
    """The bytes as text; each byte that is not part of valid UTF-8 becomes U+FFFD, as Go's
    JSON encoding shows OPA's result."""
    raw = bytes.fromhex(_string(args[0], "hex.decode"))
    return raw.decode("utf-8", errors="deployguard-per-byte")


codecs.register_error("deployguard-per-byte", lambda e: ("\ufffd" * (e.end - e.start), e.end))  # type: ignore[attr-defined]


def _indexof_n(steps: HostSteps, args: list[Any]) -> list[int]:
    """Every index (in characters, overlapping) where the needle starts; each one a step."""
    haystack, needle = _string(args[0], "indexof_n"), _string(args[1], "indexof_n")
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
        return any(test(s, b) for s in _strings(args[0], what) for b in _strings(args[1], what))

    return match


# semver: MAJOR.MINOR.PATCH without leading zeros, an optional leading "v" (OPA strips it),
# -pre.release identifiers (numeric ones without leading zeros), +build metadata.
_NUMBER = r"(0|[1-9]\d*)"
_PRERELEASE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    rf"v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def _semver_key(text: str) -> tuple[tuple[int, int, int], list[str] | None]:
    match = _SEMVER.fullmatch(text)
    if match is None or any(int(n) >= _INT64 for n in match.groups()[:3]):
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


def _semver_compare(args: list[Any]) -> int:
    (left, left_pre), (right, right_pre) = (_semver_key(_string(a, "semver.compare")) for a in args)
    if left != right:
        return -1 if left < right else 1
    return _compare_prerelease(left_pre, right_pre)


def _semver_is_valid(args: list[Any]) -> bool:
    try:
        _semver_key(args[0]) if isinstance(args[0], str) else None
    except ValueError:
        return False
    return isinstance(args[0], str)


_NUMBER_TEXT = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?)(.*)")
# Exponents beyond this are refused: Fraction("1e999999999") computes 10**999999999 (minutes
# of a blocked event loop and gigabytes); OPA's big.Float gives such a number, we an error.
_LARGEST_EXPONENT = 4000
_SI = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50, "ei": 2**60}


def _big_float(value: Fraction) -> Fraction:
    """``value`` rounded to 64 bits of mantissa, to nearest even: Go's big.Float as OPA uses it."""
    if value == 0:
        return value
    numerator, denominator = abs(value.numerator), value.denominator

    def scaled(shift: int) -> Fraction:  # |value| * 2**shift, exactly
        return Fraction(numerator << shift, denominator) if shift >= 0 else Fraction(numerator, denominator << -shift)

    shift = 63 - (numerator.bit_length() - denominator.bit_length())
    while scaled(shift) >= 2**64:
        shift -= 1
    while scaled(shift) < 2**63:
        shift += 1
    mantissa = math.floor(scaled(shift))
    remainder = scaled(shift) - mantissa
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and mantissa % 2):
        mantissa += 1
    rounded = Fraction(mantissa, 1 << shift) if shift >= 0 else Fraction(mantissa << -shift)
    return rounded if value > 0 else -rounded


def _number_and_unit(text: str, what: str) -> tuple[Fraction, str]:
    """A signed decimal (with an optional exponent), exactly, and the letters after it; quotes ignored."""
    match = _NUMBER_TEXT.fullmatch(text.replace('"', ""))
    if match is None or (not match.group(3).isalpha() and match.group(3)):
        raise ValueError(f"{what}: could not parse {text!r}")
    exponent = match.group(2) or "0"
    if len(exponent) > 8 or abs(int(exponent)) > _LARGEST_EXPONENT:
        raise ValueError(f"{what}: the exponent of {text[:40]!r} is out of range")
    return Fraction(match.group(1)), match.group(3)


def _units_parse_bytes(args: list[Any]) -> int:
    """``10KB`` = 10,000, ``1.5Gi`` = 1,610,612,736: SI and binary units, any case, an optional
    B after one; the whole number of bytes (truncated)."""
    number, unit = _number_and_unit(_string(args[0], "units.parse_bytes"), "units.parse_bytes")
    unit = unit.lower()
    if len(unit) > 1 and unit.endswith("b"):
        unit = unit[:-1]
    scale = 1 if unit == "" else _SI.get(unit) or _BINARY.get(unit)
    if scale is None:
        raise ValueError(f"units.parse_bytes: unknown unit in {args[0]!r}")
    return int(_big_float(_big_float(number) * scale))


def _units_parse(args: list[Any]) -> int | float:
    """``10m`` = 0.01, ``2M`` = 2,000,000, ``1Ki`` = 1024: SI and binary units, where only the
    first letter's case counts, and only to tell ``m`` (milli) from ``M`` (mega)."""
    number, unit = _number_and_unit(_string(args[0], "units.parse"), "units.parse")
    if unit == "m":
        value = number / 1000
    else:
        unit = unit.lower()
        scale = 1 if unit == "" else _SI.get(unit) or _BINARY.get(unit)
        if scale is None:
            raise ValueError(f"units.parse: unknown unit in {args[0]!r}")
        value = number * scale
    return int(value) if value.denominator == 1 else float(value)


_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


def _query_unescape(text: str) -> str:
    """Go's ``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte (two hex digits, or an error)."""
    if bad := _BAD_ESCAPE.search(text):
        raise ValueError(f"invalid URL escape {text[bad.start() : bad.start() + 3]!r}")
    raw = unquote_to_bytes(text.replace("+", " "))
    return raw.decode("utf-8", errors="deployguard-per-byte")


def _query_decode(args: list[Any]) -> str:
    return _query_unescape(_string(args[0], "urlquery.decode"))


def _query_object(args: list[Any]) -> dict[str, list[str]]:
    """Go's ``url.ParseQuery``: ``&``-separated ``key=value`` pairs, each unescaped; a ``;``
    is an error (Go 1.17 on), a pair without ``=`` has the empty value."""
    parsed: dict[str, list[str]] = {}
    failure: ValueError | None = None
    for pair in _string(args[0], "urlquery.decode_object").split("&"):
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


def _query_encode_object(args: list[Any]) -> str:
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


def _hmac(algorithm: str) -> HostBuiltin:
    def digest(args: list[Any]) -> str:
        message, key = (_string(a, f"crypto.hmac.{algorithm}").encode() for a in args[:2])
        return hmac.new(key, message, algorithm).hexdigest()

    return digest


def _glob_quote_meta(args: list[Any]) -> str:
    """gobwas/glob's ``QuoteMeta``: a backslash before each of ``*?\\[]{}``."""
    return "".join("\\" + c if c in "*?\\[]{}" else c for c in _string(args[0], "glob.quote_meta"))


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


def _object_subset(args: list[Any]) -> bool:
    """OPA's ``object.subset``: objects key by key (recursing into objects, sets and arrays),
    sets by membership, arrays as a contiguous run, an array against a set by OPA's count
    of the array's elements found in the set (so ``[1, 1]`` covers ``{1, 2}``, as in OPA)."""
    big, small = args[0], args[1]
    if isinstance(big, dict) and isinstance(small, dict):
        return _objects_subset(big, small)
    if isinstance(big, RegoSet) and isinstance(small, RegoSet):
        return all(rego_contains(big, member) for member in small)
    if type(big) is list and isinstance(small, RegoSet):
        return _array_covers_set(big, small)
    if type(big) is list and type(small) is list:
        return _array_subset(big, small)
    raise ValueError("both arguments object.subset must be of the same type or array and set")


def _objects_subset(big: dict[Any, Any], small: dict[Any, Any]) -> bool:
    for key, wanted in small.items():
        if key not in big:
            return False
        have = big[key]
        if rego_equal(have, wanted):
            continue
        if isinstance(have, dict) and isinstance(wanted, dict):
            if not _objects_subset(have, wanted):
                return False
        elif isinstance(have, RegoSet) and isinstance(wanted, RegoSet):
            if not all(rego_contains(have, member) for member in wanted):
                return False
        elif type(have) is list and type(wanted) is list:
            if not _array_subset(have, wanted):
                return False
        else:
            return False
    return True


def _array_subset(big: list[Any], small: list[Any]) -> bool:
    """``small`` as a contiguous run somewhere in ``big``."""
    if len(small) > len(big):
        return False
    return any(all(rego_equal(big[start + i], small[i]) for i in range(len(small)))
               for start in range(len(big) - len(small) + 1))  # fmt: skip


def _array_covers_set(big: list[Any], small: RegoSet) -> bool:
    """OPA's count: true once as many of the array's elements are in the set as the set has
    members (duplicates count again); an empty array is never a superset."""
    unmatched = len(small)
    for element in big:
        if rego_contains(small, element):
            unmatched -= 1
        if unmatched == 0:
            return True
    return False


_object_subset.rego_values = True  # type: ignore[attr-defined]


def host_builtins(clock: EvaluationClock, steps: HostSteps) -> dict[str, HostBuiltin]:
    """Every built-in the wasm engine provides to a module, by OPA's name; ``time.now_ns``
    reads ``clock``, and the ones that loop over their input take ``steps``."""
    return {
        "sprintf": charged(steps, "sprintf", _sprintf, 4),
        "urlquery.encode": lambda args: quote_plus(_string(args[0], "urlquery.encode"), safe=""),
        "urlquery.decode": charged(steps, "urlquery.decode", _query_decode, 16),
        "urlquery.decode_object": charged(steps, "urlquery.decode_object", _query_object, 2),
        "urlquery.encode_object": charged(steps, "urlquery.encode_object", _query_encode_object, 64),
        "crypto.hmac.md5": _hmac("md5"),
        "crypto.hmac.sha1": _hmac("sha1"),
        "crypto.hmac.sha256": _hmac("sha256"),
        "crypto.hmac.sha512": _hmac("sha512"),
        "crypto.hmac.equal": lambda args: hmac.compare_digest(
            _string(args[0], "crypto.hmac.equal").encode(), _string(args[1], "crypto.hmac.equal").encode()
        ),
        "glob.quote_meta": charged(steps, "glob.quote_meta", _glob_quote_meta, 64),
        "net.cidr_is_valid": _cidr_is_valid,
        "object.subset": _object_subset,
        "crypto.md5": _hash("md5"),
        "crypto.sha1": _hash("sha1"),
        "crypto.sha256": _hash("sha256"),
        "hex.encode": lambda args: _string(args[0], "hex.encode").encode().hex(),
        "hex.decode": charged(steps, "hex.decode", _hex_decode, 16),  # invalid UTF-8 costs a call per byte
        "base64url.encode_no_pad": lambda args: (
            base64.urlsafe_b64encode(_string(args[0], "base64url.encode_no_pad").encode()).decode().rstrip("=")
        ),
        "indexof_n": partial(_indexof_n, steps),
        "strings.count": lambda args: _string(args[0], "strings.count").count(_string(args[1], "strings.count")),
        "strings.any_prefix_match": _any_match(str.startswith, "strings.any_prefix_match"),
        "strings.any_suffix_match": _any_match(str.endswith, "strings.any_suffix_match"),
        "semver.is_valid": _semver_is_valid,
        "semver.compare": _semver_compare,
        "units.parse_bytes": _units_parse_bytes,
        "units.parse": _units_parse,
        **time_builtins(clock, steps),
    }


# For calls outside an evaluation (the tests hold each to opa eval): steps unbounded.
HOST_BUILTINS = host_builtins(EvaluationClock(), HostSteps(limit=2**62))
