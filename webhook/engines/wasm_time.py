"""OPA's ``time.*`` built-ins for the wasm engine, computed as Go's ``time`` package does.

Change windows and freezes are what security teams write Rego for, and those policies
read the clock in a time zone (``time.clock([now, "Europe/Berlin"])``, ``time.weekday``),
step across months (``time.add_date``), print instants in messages (``time.format`` with a
Go layout) and read durations (``time.parse_duration_ns("36h")``). OPA's Wasm target
leaves all of these to the host, so they are here, held to a real ``opa eval`` by
tests/integration/test_wasm_engine.py.

An instant is OPA's: nanoseconds since the epoch, or ``[ns, zone]`` or ``[ns, zone,
layout]``, the zone an IANA name, ``""``/``"UTC"`` or ``"Local"`` (the process's zone, as
Go reads it). Go's quirks are kept on purpose, because a policy must decide the same on
every engine: ``AddDate`` normalises Jan 31 + 1 month to Mar 3, a wall time in a DST gap
gets Go's offset, and layouts are Go's reference-time layouts, not strftime.
"""

from __future__ import annotations

import calendar
import math
import os
import re
import time
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

_INT64 = 2**63
_NS = 10**9
_UTC = UTC
# The instants an int64 of nanoseconds holds, in whole seconds either side (Go refuses the rest).
_FIRST_SECOND, _LAST_SECOND = -_INT64 // _NS, (_INT64 - 1) // _NS
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [calendar.month_name[m] for m in range(1, 13)]


class EvaluationClock:
    """``time.now_ns``: the same instant for every call in one evaluation, as OPA has it."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def start(self) -> None:
        self.now_ns = time.time_ns()

    def builtin(self, _args: list[Any]) -> int:
        return self.now_ns


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: operand must be a string, got {type(value).__name__}")
    return value


def _integer(value: Any, what: str) -> int:
    """An integer operand: OPA reads the number's text as an int64, so 1.5 is refused (1.0 is not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: operand must be an integer number")
    if not -_INT64 <= value < _INT64:
        raise ValueError(f"{what}: {value} does not fit in 64 bits")
    return value


@cache
def _local_zone() -> tzinfo:
    """Go's ``time.Local``: $TZ when set (a name, or a path after an optional ':'),
    /etc/localtime when not, UTC when neither loads."""
    name = os.environ.get("TZ")
    try:
        if name is None:
            with open("/etc/localtime", "rb") as data:
                return ZoneInfo.from_file(data)
        name = name.removeprefix(":")
        if name.startswith("/"):
            with open(name, "rb") as data:
                return ZoneInfo.from_file(data)
        if name not in ("", "UTC"):
            return ZoneInfo(name)
    except (OSError, ValueError, KeyError):
        pass
    return _UTC


def _zone(name: Any) -> tzinfo:
    name = _string(name, "time zone")
    if name in ("", "UTC"):
        return _UTC
    if name == "Local":
        return _local_zone()
    if ".." in name or name.startswith(("/", "\\")):
        raise ValueError(f"time: invalid location name {name!r}")
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name}") from exc


def _instant(value: Any, what: str) -> tuple[int, tzinfo, str]:
    """OPA's operand ``ns`` or ``[ns, zone, layout]``: nanoseconds, zone and layout ("" when absent)."""
    zone: tzinfo = _UTC
    layout = ""
    if isinstance(value, list):
        if not value:
            raise TypeError(f"{what}: operand must be either number (ns) or [number (ns), string (tz)]")
        if len(value) > 1:
            zone = _zone(value[1])
        if len(value) > 2:
            layout = _string(value[2], what)
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what}: operand must be either number (ns) or [number (ns), string (tz)]")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{what}: timestamp too big")  # OPA's words for a fraction too
    nanoseconds = int(value)
    if not -_INT64 <= nanoseconds < _INT64:
        raise ValueError(f"{what}: timestamp too big")
    return nanoseconds, zone, layout


def _local(nanoseconds: int, zone: tzinfo) -> datetime:
    """The wall time of an instant in a zone (microseconds dropped: nanoseconds are kept apart)."""
    return datetime.fromtimestamp(nanoseconds // _NS, zone)


def _offset_at(unix_seconds: int, zone: tzinfo) -> int:
    offset = datetime.fromtimestamp(unix_seconds, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _checked_ns(unix_seconds: int, nanos: int, what: str) -> int:
    nanoseconds = unix_seconds * _NS + nanos
    if not -_INT64 <= nanoseconds < _INT64:
        raise ValueError(f"{what}: time outside of valid range")
    return nanoseconds


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date; ``day`` may run past the month (Go's Date)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _go_date(year: int, month: int, day: int, clock: tuple[int, int, int], nanos: int, zone: tzinfo) -> int:
    """Go's ``time.Date`` for an in-range clock: months and days normalised, the wall time
    placed in the zone by Go's rule (the offset at the wall time read as UTC, corrected once)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    hour, minute, second = clock
    unix = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if not _FIRST_SECOND - 2 * 86400 <= unix <= _LAST_SECOND + 2 * 86400:
        raise ValueError("time.add_date: time outside of valid range")
    offset = _offset_at(unix, zone)
    if offset:
        unix -= _offset_at(unix - offset, zone)
    return _checked_ns(unix, nanos, "time.add_date")


def _date(args: list[Any]) -> list[int]:
    day = _local(*_instant(args[0], "time.date")[:2])
    return [day.year, day.month, day.day]


def _clock(args: list[Any]) -> list[int]:
    moment = _local(*_instant(args[0], "time.clock")[:2])
    return [moment.hour, moment.minute, moment.second]


def _weekday(args: list[Any]) -> str:
    return _WEEKDAYS[_local(*_instant(args[0], "time.weekday")[:2]).weekday()]


def _add_date(args: list[Any]) -> int:
    """Go's ``AddDate``. Counts so large that Go's int arithmetic wraps (beyond ~10^13 years
    or days) are refused here, where OPA returns whatever instant the wrap lands on."""
    nanoseconds, zone, _ = _instant(args[0], "time.add_date")
    years, months, days = (_integer(a, "time.add_date") for a in args[1:4])
    moment = _local(nanoseconds, zone)
    clock = (moment.hour, moment.minute, moment.second)
    return _go_date(moment.year + years, moment.month + months, moment.day + days, clock, nanoseconds % _NS, zone)


def _diff(args: list[Any]) -> list[int]:
    """Years, months, days, hours, minutes and seconds between two instants, in the first's zone."""
    (first, zone, _), (second, _, _) = _instant(args[0], "time.diff"), _instant(args[1], "time.diff")
    early, late = _local(min(first, second), zone), _local(max(first, second), zone)
    year, month, day = late.year - early.year, late.month - early.month, late.day - early.day
    hour, minute, sec = late.hour - early.hour, late.minute - early.minute, late.second - early.second
    if sec < 0:
        sec, minute = sec + 60, minute - 1
    if minute < 0:
        minute, hour = minute + 60, hour - 1
    if hour < 0:
        hour, day = hour + 24, day - 1
    if day < 0:
        day, month = day + calendar.monthrange(early.year, early.month)[1], month - 1
    if month < 0:
        month, year = month + 12, year - 1
    return [year, month, day, hour, minute, sec]


# --- time.format: Go's reference-time layouts ("2006-01-02T15:04:05Z07:00") ---

NAMED_LAYOUTS = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": "2006-01-02T15:04:05Z07:00",
    "RFC3339Nano": "2006-01-02T15:04:05.999999999Z07:00",
}
# Layout elements, longest first where one is the start of another; "Jan"/"Mon" only when no
# lower-case letter follows ("Month" is text). A fraction is handled apart (its length varies).
_ELEMENTS = re.compile(
    r"January|Jan(?![a-z])|Monday|Mon(?![a-z])|MST|0[1-6]|002|15|1|2006|2|_2006|__2|_2|3|4|5|PM|pm"
    r"|-070000|-07:00:00|-0700|-07:00|-07|Z070000|Z07:00:00|Z0700|Z07:00|Z07|[.,](?:0+|9+)(?![0-9])"
)


def _go_int(value: int, width: int) -> str:
    return ("-" if value < 0 else "") + str(abs(value)).rjust(width, "0")


def _zone_text(element: str, offset: int) -> str:
    if offset == 0 and element.startswith("Z"):
        return "Z"
    minutes = int(offset / 60)  # Go divides toward zero
    sign, minutes, seconds = ("-", -minutes, -offset) if minutes < 0 else ("+", minutes, offset)
    separator = ":" if ":" in element else ""
    text = sign + _go_int(minutes // 60, 2)
    if element not in ("-07", "Z07"):
        text += separator + _go_int(minutes % 60, 2)
    if element.endswith(("0000", ":00:00")):
        text += separator + _go_int(int(math.fmod(seconds, 60)), 2)
    return text


def _fraction(element: str, nanos: int) -> str:
    digits = len(element) - 1
    if element[1] == "9":
        if nanos == 0:
            return ""
        text = str(nanos).rjust(9, "0")[:digits].rstrip("0")
        return element[0] + text if text else ""
    return element[0] + str(nanos).rjust(9, "0")[:digits]


def go_format(nanoseconds: int, zone: tzinfo, layout: str) -> str:
    """``time.Time.Format``: each layout element replaced by the instant's field, the rest kept."""
    moment = _local(nanoseconds, zone)
    offset = _offset_at(nanoseconds // _NS, zone)
    hour12 = moment.hour % 12 or 12
    fields = {
        "January": _MONTHS[moment.month - 1], "Jan": _MONTHS[moment.month - 1][:3],
        "Monday": _WEEKDAYS[moment.weekday()], "Mon": _WEEKDAYS[moment.weekday()][:3],
        "01": f"{moment.month:02d}", "02": f"{moment.day:02d}", "03": f"{hour12:02d}",
        "04": f"{moment.minute:02d}", "05": f"{moment.second:02d}", "06": f"{abs(moment.year) % 100:02d}",
        "002": f"{moment.timetuple().tm_yday:03d}", "__2": f"{moment.timetuple().tm_yday:>3d}",
        "15": f"{moment.hour:02d}", "1": str(moment.month), "2006": _go_int(moment.year, 4),
        "_2006": "_" + _go_int(moment.year, 4), "2": str(moment.day), "_2": f"{moment.day:>2d}",
        "3": str(hour12), "4": str(moment.minute), "5": str(moment.second),
        "PM": "PM" if moment.hour >= 12 else "AM", "pm": "pm" if moment.hour >= 12 else "am",
    }  # fmt: skip

    def element(match: re.Match[str]) -> str:
        text = match.group()
        if text in fields:
            return fields[text]
        if text == "MST":
            return moment.tzname() or _zone_text("-0700", offset)
        if text[0] in ".,":
            return _fraction(text, nanoseconds % _NS)
        return _zone_text(text, offset)

    return _ELEMENTS.sub(element, layout)


def _format(args: list[Any]) -> str:
    nanoseconds, zone, layout = _instant(args[0], "time.format")
    layout = NAMED_LAYOUTS.get(layout or "RFC3339Nano", layout)
    return go_format(nanoseconds, zone, layout)


# --- time.parse_duration_ns: Go's ParseDuration, plus OPA's d, w and y (24, 168 and 8,760 h) ---

_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": _NS, "m": 60 * _NS,
          "h": 3600 * _NS}  # fmt: skip
_EXTENDED_HOURS = {"d": 24, "w": 7 * 24, "y": 365 * 24}
_EXTENDED = re.compile(r"([-+]?)((?:[0-9.]+(?:ms|us|\u00b5s|ns|[a-z]))+)")
_SEGMENT = re.compile(r"([0-9.]+)(ms|us|\u00b5s|ns|[a-z])")


def _go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``: signed decimal numbers with units, summed, within int64."""
    invalid = ValueError(f"time: invalid duration {text!r}")
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
            raise ValueError(f"time: missing unit in duration {text!r}")
        unit = _UNITS.get(unit_match.group())
        if unit is None:
            raise ValueError(f"time: unknown unit {unit_match.group()!r} in duration {text!r}")
        rest = rest[unit_match.end() :]
        value = int(whole or "0")
        if value > _INT64 // unit:
            raise invalid
        value *= unit
        if fraction and int(fraction):
            # Go keeps at most 19 digits (until the next would overflow) and scales in float64
            kept, scale = 0, 1.0
            for digit in fraction:
                if kept > (_INT64 - 1) // 10 or kept * 10 + int(digit) > _INT64:
                    break
                kept, scale = kept * 10 + int(digit), scale * 10
            value += int(float(kept) * (float(unit) / scale))
            if value > _INT64:
                raise invalid
        total += value
        if total > _INT64:
            raise invalid
    if negative:
        return -total
    if total > _INT64 - 1:
        raise invalid
    return total


def _go_float_text(value: float) -> str:
    """``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest exact digits, no exponent."""
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _parse_duration_ns(args: list[Any]) -> int:
    text = _string(args[0], "time.parse_duration_ns")
    if not text:
        raise ValueError('time: invalid duration ""')
    if not any(unit in text for unit in "dwy"):
        return _go_duration(text)
    whole = _EXTENDED.fullmatch(text)
    if whole is None:
        raise ValueError(f"time: invalid duration {text!r}")
    rewritten = whole.group(1)
    for digits, unit in _SEGMENT.findall(whole.group(2)):
        if unit in _EXTENDED_HOURS:
            try:
                hours = float(digits) * _EXTENDED_HOURS[unit]
            except ValueError:
                raise ValueError(f"time: invalid duration {text!r}") from None
            if math.isinf(hours) or math.isinf(float(digits)):
                raise ValueError(f"time: invalid duration {text!r}")
            rewritten += _go_float_text(hours) + "h"
        else:
            rewritten += digits + unit
    return _go_duration(rewritten)


# --- time.parse_rfc3339_ns ---

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")


def _parse_rfc3339_ns(args: list[Any]) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (Go's time.RFC3339 layout)."""
    text = _string(args[0], "time.parse_rfc3339_ns")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"time.parse_rfc3339_ns: cannot parse {text!r} as RFC 3339")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60
            and second < 60):  # fmt: skip
        raise ValueError(f"time.parse_rfc3339_ns: {text!r} is out of range")
    zone = match.group(8)
    offset = 0 if zone == "Z" else (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[0] == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, second)) - offset
    nanoseconds = seconds * _NS + int((match.group(7) or "0")[:9].ljust(9, "0"))
    if not -_INT64 <= nanoseconds < _INT64:
        raise ValueError(f"time.parse_rfc3339_ns: {text!r} is outside the nanoseconds an int64 holds")
    return nanoseconds


def time_builtins(clock: EvaluationClock) -> dict[str, Any]:
    """The ``time.*`` built-ins by OPA's name, ``time.now_ns`` reading ``clock``."""
    return {
        "time.now_ns": clock.builtin,
        "time.parse_rfc3339_ns": _parse_rfc3339_ns,
        "time.parse_duration_ns": _parse_duration_ns,
        "time.date": _date,
        "time.clock": _clock,
        "time.weekday": _weekday,
        "time.add_date": _add_date,
        "time.diff": _diff,
        "time.format": _format,
    }
