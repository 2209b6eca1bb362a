"""OPA's ``sprintf`` for the wasm engine: Go's ``fmt.Sprintf``, which the host must compute.

It is Go's ``fmt.Sprintf`` over OPA's conversion of the arguments (a number without a
fraction or exponent is an int64, one with is a float64, a string is itself, anything
else is its Rego text). The verbs
and flags policies use are reproduced here (``%s %v %d %f %e %g %q %x %X %t %%``, width,
precision, ``-+0 #``, Go's ``%!verb(type=value)``, ``%!v(MISSING)`` and ``%!(EXTRA …)``);
tests/integration/test_wasm_engine.py holds them to a real ``opa eval``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

_DIRECTIVE = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?([a-zA-Z%])")


class GoInt(int):
    """An OPA number without fraction or exponent: Go's int64 in fmt."""


def rego_text(value: Any) -> str:
    """How OPA writes a non-scalar term (or a bool, null) into sprintf: its Rego text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the number's JSON text (OPA keeps the text it was given)
    if isinstance(value, list):
        return "[" + ", ".join(rego_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{rego_text(k)}: {rego_text(v)}" for k, v in sorted(value.items())) + "}"
    raise TypeError(f"no Rego text for {type(value).__name__}")


def sprintf_argument(value: Any) -> Any:
    """OPA's conversion of one element of sprintf's argument array to a Go value."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return rego_text(value)
    if isinstance(value, int):
        return GoInt(value)
    return value  # str or float


def _go_type(value: Any) -> str:
    if isinstance(value, GoInt):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string"


def _go_float(value: float, verb: str, precision: int | None) -> str:
    """strconv.FormatFloat as fmt uses it: %v and %g shortest, %e %E %f with a precision of 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if verb in "fF":
        return f"{value:.{6 if precision is None else precision}f}"
    if verb in "eE":
        text = _two_digit_exponent(f"{value:.{6 if precision is None else precision}e}")
        return text.upper() if verb == "E" else text
    if precision is not None:  # %.Ng: N significant digits
        return _two_digit_exponent(f"{value:.{precision or 1}g}")
    # shortest: the digits of repr (the same shortest digits as Go), %e when the exponent
    # is below -4 or at least 6 (strconv's rule for the shortest %g)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple() if value else (0, (), 0)
    count = len(digits)
    point = count + int(exponent)
    exp = point - 1
    if count and (exp < -4 or exp >= 6):
        shown = "".join(map(str, digits))
        return ("-" if sign else "") + shown[0] + ("." + shown[1:] if count > 1 else "") + f"e{exp:+03d}"
    return f"{value:.{max(count - point, 0)}f}"


def _two_digit_exponent(text: str) -> str:
    match = re.search(r"e([+-])(\d+)$", text)
    if not match:
        return text
    return text[: match.start()] + f"e{match.group(1)}{int(match.group(2)):02d}"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(text: str, quote: str = '"') -> str:
    """strconv.Quote (or QuoteRune with ``'``): Go escapes, non-printable runes as \\x, \\u, \\U."""
    out = [quote]
    for char in text:
        code = ord(char)
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


class _BadVerb(Exception):
    """The verb does not fit the argument: Go writes %!verb(type=value) instead."""


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return _go_float(value, "v", None)
    return str(value)


def _format_one(verb: str, flags: str, precision: int | None, value: Any) -> str:
    """One value under one verb, without width; _BadVerb when Go would not format it so."""
    if verb == "v":
        if isinstance(value, float):
            return _format_one("g", flags, precision, value)
        if isinstance(value, GoInt):
            return _format_one("d", flags, precision, value)
        return str(value) if precision is None else str(value)[:precision]
    if isinstance(value, str):
        if verb == "s":
            return value if precision is None else value[:precision]
        if verb == "q":
            return _go_quote(value)
        if verb in "xX":
            encoded = value.encode().hex()
            return encoded.upper() if verb == "X" else encoded
        raise _BadVerb
    if isinstance(value, GoInt):
        return _format_int(verb, flags, precision, value)
    if isinstance(value, float):
        if verb in "eEfFgG":
            text = _go_float(value, verb, precision)
        elif verb in "xX":
            text = _go_hex_float(value)
            text = text.upper().replace("0X", "0X") if verb == "X" else text
        else:
            raise _BadVerb
        return ("+" + text) if "+" in flags and value >= 0 else text
    raise TypeError(f"sprintf: cannot format {type(value).__name__}")


def _format_int(verb: str, flags: str, precision: int | None, value: int) -> str:
    """%d %x %X %o %b %c %q of an int64; a precision is the least number of digits."""
    if verb == "q":
        return _go_quote(chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd", "'")
    if verb == "c":
        return chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"
    spec = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}.get(verb)
    if spec is None:
        raise _BadVerb
    digits = format(abs(value), spec)
    if precision is not None:
        digits = "" if precision == 0 and value == 0 else digits.zfill(precision)
    prefix = {"x": "0x", "X": "0X", "o": "0", "b": ""}.get(verb, "") if "#" in flags else ""
    sign = "-" if value < 0 else ("+" if "+" in flags else "")
    return sign + prefix + digits


def _go_hex_float(value: float) -> str:
    """%x of a float64: Go's shortest hexadecimal mantissa and a two-digit exponent."""
    text = value.hex()  # e.g. -0x1.4000000000000p+0
    sign = "-" if text.startswith("-") else ""
    mantissa, exponent = text.lstrip("-")[2:].split("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{sign}0x{mantissa}p{int(exponent):+03d}"


def _padded(text: str, flags: str, width: str | None, value: Any) -> str:
    if not width or len(text) >= int(width):
        return text
    pad = int(width) - len(text)
    if "-" in flags:
        return text + " " * pad
    if "0" in flags and not isinstance(value, str):
        sign = text[0] if text[:1] in "+-" else ""
        return sign + "0" * pad + text[len(sign) :]
    return " " * pad + text


def _directive(verb: str, flags: str, width: str | None, precision: int | None, value: Any) -> str:
    """One %verb; for a verb that does not fit, Go's %!verb(type=value), the value as %v
    with the same flags (so a width pads inside the parentheses)."""
    try:
        return _padded(_format_one(verb, flags, precision, value), flags, width, value)
    except _BadVerb:
        shown = _padded(_format_one("v", flags, precision, value), flags, width, value)
        return f"%!{verb}({_go_type(value)}={shown})"


def _too_large(digits: str) -> bool:
    """Go's ``parsenum`` overflow: another digit after the number passed 1,000,000 (so widths
    and precisions stop near ten million rather than asking for gigabytes of padding)."""
    number = 0
    for digit in digits:
        if number > 1_000_000:
            return True
        number = number * 10 + int(digit)
    return False


def go_sprintf(template: str, raw_args: list[Any]) -> str:
    """fmt.Sprintf(template, args...) for OPA's arguments."""
    args = [sprintf_argument(value) for value in raw_args]
    out: list[str] = []
    used = 0
    position = 0
    for match in _DIRECTIVE.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        flags, width, precision_text, verb = match.groups()
        if _too_large(width or "") or _too_large(precision_text or ""):
            out.append("%!(NOVERB)")  # Go stops reading the format there
            position = len(template)
            break
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = args[used]
        used += 1
        precision = None if precision_text is None else int(precision_text or 0)
        out.append(_directive(verb, flags, width, precision, value))
    out.append(template[position:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(v)}={_plain(v)}" for v in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
