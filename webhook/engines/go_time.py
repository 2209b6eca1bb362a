"""Go's ``time`` package as OPA's ``time.*`` built-ins use it: zones, dates and durations.

The wasm engine must compute what OPA computes (wasm_time.py holds the built-ins), and OPA
computes with Go: ``AddDate`` normalises Jan 31 + 1 month to Mar 3, a wall time in a DST
gap gets Go's offset, and durations are Go's (layouts are in go_layout.py). Each function
here follows the Go function it names, quirks included, and
tests/integration/test_wasm_engine.py holds them to a real ``opa eval``.
"""

from __future__ import annotations

import calendar
import io
import math
import os
import re
import struct
import zoneinfo
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

INT64 = 2**63
NS = 10**9
# The instants an int64 of nanoseconds holds, in whole seconds either side (Go refuses the rest).
_FIRST_SECOND, _LAST_SECOND = -INT64 // NS, (INT64 - 1) // NS
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [calendar.month_name[m] for m in range(1, 13)]


class GoTimeError(ValueError):
    """What Go's time functions return as an error (a parse, a range, an unknown zone)."""


class LocalZone:
    """Go's ``time.Local``: the zone, and the (abbreviation, offset) pairs its TZif data lists,
    which ``time.Parse`` looks a zone abbreviation up in."""

    def __init__(self, zone: tzinfo, abbreviations: list[tuple[str, int]]) -> None:
        self.zone, self.abbreviations = zone, abbreviations


def tzif_abbreviations(data: bytes) -> list[tuple[str, int]]:
    """The local time types of TZif data (RFC 8536), in file order: (abbreviation, UTC offset)."""
    if len(data) < 44 or data[:4] != b"TZif":
        return []
    try:
        return _tzif_types(data)
    except struct.error:  # truncated: no abbreviations, as if the zone listed none
        return []


def _tzif_types(data: bytes) -> list[tuple[str, int]]:
    version = data[4]
    counts = struct.unpack(">6l", data[20:44])
    start = 44
    if version >= ord("2"):  # Go reads the 64-bit block that follows the 32-bit one
        isut, isstd, leap, times, types, chars = counts
        start += times * 5 + types * 6 + chars + leap * 8 + isstd + isut
        counts = struct.unpack(">6l", data[start + 20 : start + 44])
        start += 44
        time_size = 8
    else:
        time_size = 4
    _isut, _isstd, _leap, times, types, chars = counts
    types_at = start + times * (time_size + 1)
    names = data[types_at + types * 6 : types_at + types * 6 + chars]
    found = []
    for index in range(types):
        offset, _dst, name_at = struct.unpack(">lBB", data[types_at + index * 6 : types_at + index * 6 + 6])
        found.append((names[name_at:].split(b"\0", 1)[0].decode("ascii", "replace"), offset))
    return found


def _zone_file(name: str) -> bytes | None:
    for directory in zoneinfo.TZPATH:
        try:
            with open(os.path.join(directory, name), "rb") as data:
                return data.read()
        except OSError:
            continue
    return None


@cache
def local_zone() -> LocalZone:
    """$TZ when set (a name, or a path after an optional ':'), /etc/localtime when not, UTC
    (no abbreviations) when neither loads: Go's rules."""
    name = os.environ.get("TZ")
    try:
        if name is None or name.removeprefix(":").startswith("/"):
            with open("/etc/localtime" if name is None else name.removeprefix(":"), "rb") as file:
                data = file.read()
            return LocalZone(ZoneInfo.from_file(io.BytesIO(data)), tzif_abbreviations(data))
        name = name.removeprefix(":")
        if name in ("", "UTC"):
            return LocalZone(UTC, [])
        return LocalZone(ZoneInfo(name), tzif_abbreviations(_zone_file(name) or b""))
    except (OSError, ValueError, KeyError):
        return LocalZone(UTC, [])


def zone_named(name: str) -> tzinfo:
    """Go's ``LoadLocation`` (with OPA's "" for UTC): an IANA name, "UTC", "Local"."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone().zone
    if ".." in name or name.startswith(("/", "\\")):
        raise GoTimeError(f"time: invalid location name {name!r}")
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise GoTimeError(f"unknown time zone {name}") from exc


def wall_time(nanoseconds: int, zone: tzinfo) -> datetime:
    """The wall time of an instant in a zone (microseconds dropped: nanoseconds are kept apart)."""
    return datetime.fromtimestamp(nanoseconds // NS, zone)


def offset_at(unix_seconds: int, zone: tzinfo) -> int:
    offset = datetime.fromtimestamp(unix_seconds, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def checked_ns(unix_seconds: int, nanos: int) -> int:
    """OPA's ``toSafeUnixNano``: the instant in nanoseconds, if an int64 holds it."""
    nanoseconds = unix_seconds * NS + nanos
    if not -INT64 <= nanoseconds < INT64:
        raise GoTimeError("time outside of valid range")
    return nanoseconds


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; ``day`` may run past the month (Go's Date)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def go_date(year: int, month: int, day: int, clock: tuple[int, int, int], nanos: int, zone: tzinfo) -> int:
    """Go's ``time.Date`` for an in-range clock: months and days normalised, the wall time
    placed in the zone by Go's rule (the offset at the wall time read as UTC, corrected once)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    hour, minute, second = clock
    unix = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if not _FIRST_SECOND - 2 * 86400 <= unix <= _LAST_SECOND + 2 * 86400:
        raise GoTimeError("time outside of valid range")
    offset = offset_at(unix, zone)
    if offset:
        unix -= offset_at(unix - offset, zone)
    return checked_ns(unix, nanos)


# --- time.parse_duration_ns: Go's ParseDuration, plus OPA's d, w and y (24, 168 and 8,760 h) ---

_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": NS, "m": 60 * NS,
          "h": 3600 * NS}  # fmt: skip
_EXTENDED_HOURS = {"d": 24, "w": 7 * 24, "y": 365 * 24}
_EXTENDED = re.compile(r"([-+]?)((?:[0-9.]+(?:ms|us|\u00b5s|ns|[a-z]))+)")
_SEGMENT = re.compile(r"([0-9.]+)(ms|us|\u00b5s|ns|[a-z])")


def go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``: signed decimal numbers with units, summed, within int64."""
    invalid = GoTimeError(f"time: invalid duration {text!r}")
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        match = re.match(r"([0-9]*)(?:\.([0-9]*))?", rest)
        assert match is not None
        whole, fraction = match.group(1), match.group(2)
        if not whole and not fraction:
            raise invalid
        rest = rest[match.end() :]
        unit_match = re.match(r"[^0-9.]+", rest)
        if unit_match is None:
            raise GoTimeError(f"time: missing unit in duration {text!r}")
        unit = _UNITS.get(unit_match.group())
        if unit is None:
            raise GoTimeError(f"time: unknown unit {unit_match.group()!r} in duration {text!r}")
        rest = rest[unit_match.end() :]
        value = int(whole or "0")
        if value > INT64 // unit:
            raise invalid
        value *= unit
        if fraction and int(fraction):
            # Go keeps at most 19 digits (until the next would overflow) and scales in float64
            kept, scale = 0, 1.0
            for digit in fraction:
                if kept > (INT64 - 1) // 10 or kept * 10 + int(digit) > INT64:
                    break
                kept, scale = kept * 10 + int(digit), scale * 10
            value += int(float(kept) * (float(unit) / scale))
            if value > INT64:
                raise invalid
        total += value
        if total > INT64:
            raise invalid
    if negative:
        return -total
    if total > INT64 - 1:
        raise invalid
    return total


def go_float_text(value: float) -> str:
    """``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest exact digits, no exponent."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def opa_duration(text: str) -> int:
    """OPA's ``time.parse_duration_ns``: Go's ParseDuration, where d, w and y first become
    24, 168 and 8,760 h (a segment's number read as a float64, printed back shortest)."""
    if not text:
        raise GoTimeError('time: invalid duration ""')
    if not any(unit in text for unit in "dwy"):
        return go_duration(text)
    whole = _EXTENDED.fullmatch(text)
    if whole is None:
        raise GoTimeError(f"time: invalid duration {text!r}")
    rewritten = whole.group(1)
    for digits, unit in _SEGMENT.findall(whole.group(2)):
        if unit not in _EXTENDED_HOURS:
            rewritten += digits + unit
            continue
        try:
            number = float(digits)
        except ValueError:
            raise GoTimeError(f"time: invalid duration {text!r}") from None
        hours = number * _EXTENDED_HOURS[unit]
        if math.isinf(number) or math.isinf(hours):
            raise GoTimeError(f"time: invalid duration {text!r}")
        rewritten += go_float_text(hours) + "h"
    return go_duration(rewritten)
