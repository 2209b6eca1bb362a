"""OPA's ``time.*`` built-ins for the wasm engine: OPA's operands over Go's ``time`` (go_time.py).

Change windows and freezes are what security teams write Rego for, and those policies
read the clock in a time zone (``time.clock([now, "Europe/Berlin"])``, ``time.weekday``),
step across months (``time.add_date``), read and print dates (``time.parse_ns`` and
``time.format`` with Go layouts) and read durations (``time.parse_duration_ns("36h")``).
OPA's Wasm target leaves all of these to the host, so they are here, held to a real
``opa eval`` by tests/integration/test_wasm_engine.py.

An instant is OPA's: nanoseconds since the epoch, or ``[ns, zone]`` or ``[ns, zone,
layout]``, the zone an IANA name, ``""``/``"UTC"`` or ``"Local"``. A wrong operand raises
TypeError, a bad value ValueError (GoTimeError): the engine reports either as an error,
so a deny.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, tzinfo
from typing import Any

from webhook.engines.go_layout import NAMED_LAYOUTS, go_format, go_parse
from webhook.engines.go_time import (
    INT64,
    NS,
    WEEKDAYS,
    GoTimeError,
    go_date,
    opa_duration,
    wall_time,
    zone_named,
)
from webhook.engines.host_steps import HostSteps, charged
from webhook.engines.wasm_operands import string


class EvaluationClock:
    """``time.now_ns``: the same instant for every call in one evaluation, as OPA has it."""

    def __init__(self) -> None:
        self.now_ns = time.time_ns()

    def start(self) -> None:
        self.now_ns = time.time_ns()

    def builtin(self, _args: list[Any]) -> int:
        return self.now_ns


def _integer(value: Any, what: str) -> int:
    """An integer operand: OPA reads the number's text as an int64, so 1.5 is refused (1.0 is not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: operand must be an integer number")
    if not -INT64 <= value < INT64:
        raise ValueError(f"{what}: {value} does not fit in 64 bits")
    return value


def _instant(value: Any, what: str) -> tuple[int, tzinfo, str]:
    """OPA's operand ``ns`` or ``[ns, zone, layout]``: nanoseconds, zone and layout ("" when absent)."""
    zone: tzinfo = UTC
    layout = ""
    if isinstance(value, list):
        if not value:
            raise TypeError(f"{what}: operand must be either number (ns) or [number (ns), string (tz)]")
        if len(value) > 1:
            zone = zone_named(string(value[1], what))
        if len(value) > 2:
            layout = string(value[2], what)
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what}: operand must be either number (ns) or [number (ns), string (tz)]")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{what}: timestamp too big")  # OPA's words for a fraction too
    nanoseconds = int(value)
    if not -INT64 <= nanoseconds < INT64:
        raise ValueError(f"{what}: timestamp too big")
    return nanoseconds, zone, layout


def _date(args: list[Any]) -> list[int]:
    day = wall_time(*_instant(args[0], "time.date")[:2])
    return [day.year, day.month, day.day]


def _clock(args: list[Any]) -> list[int]:
    moment = wall_time(*_instant(args[0], "time.clock")[:2])
    return [moment.hour, moment.minute, moment.second]


def _weekday(args: list[Any]) -> str:
    return WEEKDAYS[wall_time(*_instant(args[0], "time.weekday")[:2]).weekday()]


def _add_date(args: list[Any]) -> int:
    """Go's ``AddDate``. Counts so large that Go's int arithmetic wraps (beyond ~10^13 years
    or days) are refused here, where OPA returns whatever instant the wrap lands on."""
    nanoseconds, zone, _ = _instant(args[0], "time.add_date")
    years, months, days = (_integer(a, "time.add_date") for a in args[1:4])
    moment = wall_time(nanoseconds, zone)
    clock = (moment.hour, moment.minute, moment.second)
    return go_date(moment.year + years, moment.month + months, moment.day + days, clock, nanoseconds % NS, zone)


def _diff(args: list[Any]) -> list[int]:
    """Years, months, days, hours, minutes and seconds between two instants, in the first's zone."""
    (first, zone, _), (second, _, _) = _instant(args[0], "time.diff"), _instant(args[1], "time.diff")
    early, late = wall_time(min(first, second), zone), wall_time(max(first, second), zone)
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


def _format(args: list[Any]) -> str:
    nanoseconds, zone, layout = _instant(args[0], "time.format")
    return go_format(nanoseconds, zone, NAMED_LAYOUTS.get(layout or "RFC3339Nano", layout))


def _parse_ns(args: list[Any]) -> int:
    layout, value = string(args[0], "time.parse_ns"), string(args[1], "time.parse_ns")
    return go_parse(NAMED_LAYOUTS.get(layout, layout), value)


def time_builtins(clock: EvaluationClock, steps: HostSteps) -> dict[str, Any]:
    """The ``time.*`` built-ins by OPA's name, ``time.now_ns`` reading ``clock``; the ones
    whose work grows with a layout's or a duration's length charged to ``steps``."""

    def rfc3339(args: list[Any]) -> int:  # a long fraction is read digit by digit
        return go_parse(NAMED_LAYOUTS["RFC3339"], string(args[0], "time.parse_rfc3339_ns"))

    def duration(args: list[Any]) -> int:
        return opa_duration(string(args[0], "time.parse_duration_ns"))

    return {
        "time.now_ns": clock.builtin,
        "time.parse_rfc3339_ns": charged(steps, "time.parse_rfc3339_ns", rfc3339, 16),
        "time.parse_ns": charged(steps, "time.parse_ns", _parse_ns, 2),
        "time.parse_duration_ns": charged(steps, "time.parse_duration_ns", duration, 2),
        "time.date": _date,
        "time.clock": _clock,
        "time.weekday": _weekday,
        "time.add_date": _add_date,
        "time.diff": _diff,
        "time.format": charged(steps, "time.format", _format, 2),
    }


__all__ = ["EvaluationClock", "GoTimeError", "time_builtins"]
