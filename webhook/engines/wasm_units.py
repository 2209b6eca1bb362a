"""``units.parse`` and ``units.parse_bytes`` for the wasm engine: exact decimals rounded as OPA's
big.Float rounds them, and exponents held to a bound (a huge one is an error, never a huge number).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from webhook.engines.wasm_operands import string

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


def units_parse_bytes(args: list[Any]) -> int:
    """``10KB`` = 10,000, ``1.5Gi`` = 1,610,612,736: SI and binary units, any case, an optional
    B after one; the whole number of bytes (truncated)."""
    number, unit = _number_and_unit(string(args[0], "units.parse_bytes"), "units.parse_bytes")
    unit = unit.lower()
    if len(unit) > 1 and unit.endswith("b"):
        unit = unit[:-1]
    scale = 1 if unit == "" else _SI.get(unit) or _BINARY.get(unit)
    if scale is None:
        raise ValueError(f"units.parse_bytes: unknown unit in {args[0]!r}")
    return int(_big_float(_big_float(number) * scale))


def units_parse(args: list[Any]) -> int | float:
    """``10m`` = 0.01, ``2M`` = 2,000,000, ``1Ki`` = 1024: SI and binary units, where only the
    first letter's case counts, and only to tell ``m`` (milli) from ``M`` (mega)."""
    number, unit = _number_and_unit(string(args[0], "units.parse"), "units.parse")
    if unit == "m":
        value = number / 1000
    else:
        unit = unit.lower()
        scale = 1 if unit == "" else _SI.get(unit) or _BINARY.get(unit)
        if scale is None:
            raise ValueError(f"units.parse: unknown unit in {args[0]!r}")
        value = number * scale
    return int(value) if value.denominator == 1 else float(value)
