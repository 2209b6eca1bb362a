"""Go's reference-time layouts ("2006-01-02T15:04:05Z07:00"), formatted and parsed as Go does.

OPA's ``time.format`` and ``time.parse_ns`` (and ``time.parse_rfc3339_ns``, which is a parse
with the RFC 3339 layout) use Go's ``Time.Format`` and ``time.Parse``; the wasm engine must
give the same text and the same instants. The element table and each step follow Go's
format.go, quirks included: a layout's ``Jan`` is text when a lower-case letter follows, a
space matches any run of spaces, and a zone abbreviation the local zone does not list is
read as UTC (Go labels the time with it, GMT+3 with its offset, but keeps the instant).
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import datetime, tzinfo

from webhook.engines.go_time import (
    INT64,
    MONTHS,
    NS,
    WEEKDAYS,
    GoTimeError,
    checked_ns,
    days_from_civil,
    local_zone,
    offset_at,
    wall_time,
)

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
    moment = wall_time(nanoseconds, zone)
    offset = offset_at(nanoseconds // NS, zone)
    hour12 = moment.hour % 12 or 12
    fields = {
        "January": MONTHS[moment.month - 1], "Jan": MONTHS[moment.month - 1][:3],
        "Monday": WEEKDAYS[moment.weekday()], "Mon": WEEKDAYS[moment.weekday()][:3],
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
            return _fraction(text, nanoseconds % NS)
        return _zone_text(text, offset)

    return _ELEMENTS.sub(element, layout)


# --- time.Parse ---


def _next_element(layout: str) -> tuple[str, str, str]:
    """Go's ``nextStdChunk``: the text before the first layout element, the element ("" when
    none is left) and the rest. ``_2006`` is a literal underscore and a year."""
    match = _ELEMENTS.search(layout)
    if match is None:
        return layout, "", ""
    prefix, element = layout[: match.start()], match.group()
    if element == "_2006":
        prefix, element = prefix + "_", "2006"
    return prefix, element, layout[match.end() :]


def _digit(text: str, index: int) -> bool:
    return index < len(text) and "0" <= text[index] <= "9"


def _atoi(text: str) -> int:
    """Go's time-package ``atoi``: an optional sign, then ASCII digits only."""
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not all("0" <= c <= "9" for c in digits) or int(digits or "0") > INT64:
        raise GoTimeError("time: invalid number")
    return -int(digits or "0") if text[:1] == "-" else int(digits or "0")  # Go reads "" and "-" as 0


def _getnum(text: str, fixed: bool) -> tuple[int, str]:
    """One or two digits (two when ``fixed``)."""
    if not _digit(text, 0):
        raise GoTimeError("bad value for field")
    if not _digit(text, 1):
        if fixed:
            raise GoTimeError("bad value for field")
        return int(text[0]), text[1:]
    return int(text[:2]), text[2:]


def _getnum3(text: str, fixed: bool) -> tuple[int, str]:
    count = 0
    while count < 3 and _digit(text, count):
        count += 1
    if count == 0 or (fixed and count != 3):
        raise GoTimeError("bad value for field")
    return int(text[:count]), text[count:]


def _skip(value: str, prefix: str) -> str:
    """The value after the layout's literal text; a space in the layout matches any run of spaces."""
    while prefix:
        if prefix[0] == " ":
            if value and value[0] != " ":
                raise GoTimeError("time: literal text does not match")
            prefix, value = prefix.lstrip(" "), value.lstrip(" ")
            continue
        if not value or value[0] != prefix[0]:
            raise GoTimeError("time: literal text does not match")
        prefix, value = prefix[1:], value[1:]
    return value


def _same_letter(a: str, b: str) -> bool:
    """ASCII letters equal but for case (Go's ``match``)."""
    return a.isascii() and ord(a) | 0x20 == ord(b) | 0x20 and "a" <= chr(ord(a) | 0x20) <= "z"


def _name_at_start(names: list[str], value: str) -> tuple[int, str]:
    """Go's ``lookup``: the first name the value starts with, ASCII case ignored."""
    for index, name in enumerate(names):
        head = value[: len(name)]
        if len(head) == len(name) and all(a == b or _same_letter(a, b) for a, b in zip(head, name, strict=True)):
            return index, value[len(name) :]
    raise GoTimeError("bad value for field")


def _signed_offset_length(value: str) -> int:
    """Go's ``parseSignedOffset``: the length of ``+h``/``-hh`` (hours at most 23), or 0."""
    if value[:1] not in ("+", "-"):
        return 0
    count = 1
    while _digit(value, count):
        count += 1
    if count == 1 or int(value[1:count]) > 23:
        return 0
    return count


def _zone_name_length(value: str) -> int:
    """Go's ``parseTimeZone``: how much of the value is a zone abbreviation, or 0."""
    if len(value) < 3:
        return 0
    if value[:4] in ("ChST", "MeST"):
        return 4
    if value[:3] == "GMT":
        return 3 + _signed_offset_length(value[3:]) if len(value) > 3 else 3
    if value[0] in ("+", "-"):
        return _signed_offset_length(value)
    upper = 0
    while upper < 6 and upper < len(value) and "A" <= value[upper] <= "Z":
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3] == "T" or value[:4] == "WITA"):
        return 4
    if upper == 5 and value[4] == "T":
        return 5
    return 0


def _nanoseconds(value: str, length: int) -> int:
    """Go's ``parseNanoseconds``: a separator and up to nine digits, scaled to nanoseconds."""
    if value[0] not in ".,":
        raise GoTimeError("bad value for field")
    length = min(length, 10)
    nanos = _atoi(value[1:length])
    if nanos < 0:
        raise GoTimeError("fractional second out of range")
    scale: int = 10 ** (10 - length)
    return nanos * scale


def _zone_offset(element: str, value: str) -> tuple[int, str]:
    """A numeric zone offset in seconds (``-07:00``, ``+0530``, ``-07``, ``+05:30:15``…)."""
    colon_seconds = element in ("-07:00:00", "Z07:00:00")
    if element in ("-07:00", "Z07:00"):
        if len(value) < 6 or value[3] != ":":
            raise GoTimeError("bad value for field")
        sign, hours, minutes, seconds, value = value[0], value[1:3], value[4:6], "00", value[6:]
    elif element in ("-07", "Z07"):
        if len(value) < 3:
            raise GoTimeError("bad value for field")
        sign, hours, minutes, seconds, value = value[0], value[1:3], "00", "00", value[3:]
    elif colon_seconds:
        if len(value) < 9 or value[3] != ":" or value[6] != ":":
            raise GoTimeError("bad value for field")
        sign, hours, minutes, seconds, value = value[0], value[1:3], value[4:6], value[7:9], value[9:]
    elif element in ("-070000", "Z070000"):
        if len(value) < 7:
            raise GoTimeError("bad value for field")
        sign, hours, minutes, seconds, value = value[0], value[1:3], value[3:5], value[5:7], value[7:]
    else:
        if len(value) < 5:
            raise GoTimeError("bad value for field")
        sign, hours, minutes, seconds, value = value[0], value[1:3], value[3:5], "00", value[5:]
    hour, minute, second = (_getnum(part, True)[0] for part in (hours, minutes, seconds))
    if hour > 24 or minute > 60 or second > 60:
        raise GoTimeError("time zone offset out of range")
    if sign not in ("+", "-"):
        raise GoTimeError("bad value for field")
    offset = (hour * 60 + minute) * 60 + second
    return (-offset if sign == "-" else offset), value


def _abbreviation_offset(name: str, wall_seconds: int) -> int | None:
    """Go's ``Location.lookupName`` on the local zone: the offset of an abbreviation in effect
    at that time, else of the first one of that name, else None."""
    local = local_zone()
    for abbreviation, offset in local.abbreviations:
        if abbreviation == name:
            instant = wall_seconds - offset
            moment = datetime.fromtimestamp(instant, local.zone)
            if moment.tzname() == name:
                return offset_at(instant, local.zone)
    for abbreviation, offset in local.abbreviations:
        if abbreviation == name:
            return offset
    return None


def go_parse(layout: str, value: str) -> int:
    """Go's ``time.Parse`` (UTC unless the value says otherwise), as nanoseconds since the epoch."""
    year, month, day, year_day, hour, minute, second, nanos = 0, -1, -1, -1, 0, 0, 0, 0
    utc, zone_offset, zone_name, am, pm = False, None, "", False, False
    while True:
        prefix, element, layout = _next_element(layout)
        value = _skip(value, prefix)
        if not element:
            if value:
                raise GoTimeError(f"parsing time: extra text: {value!r}")
            break
        if element == "06":
            if len(value) < 2:
                raise GoTimeError("bad value for field")
            year, value = _atoi(value[:2]), value[2:]
            year += 1900 if year >= 69 else 2000
        elif element == "2006":
            if len(value) < 4 or not _digit(value, 0):
                raise GoTimeError("bad value for field")
            year, value = _atoi(value[:4]), value[4:]
        elif element in ("Jan", "January"):
            month, value = _name_at_start([m[:3] if element == "Jan" else m for m in MONTHS], value)
            month += 1
        elif element in ("1", "01"):
            month, value = _getnum(value, element == "01")
            if not 1 <= month <= 12:
                raise GoTimeError("month out of range")
        elif element in ("Mon", "Monday"):
            _, value = _name_at_start([d[:3] if element == "Mon" else d for d in WEEKDAYS], value)
        elif element in ("2", "_2", "02"):
            if element == "_2" and value[:1] == " ":
                value = value[1:]
            day, value = _getnum(value, element == "02")
        elif element in ("__2", "002"):
            for _ in range(2):
                if element == "__2" and value[:1] == " ":
                    value = value[1:]
            year_day, value = _getnum3(value, element == "002")
        elif element == "15":
            hour, value = _getnum(value, False)
            if hour >= 24:
                raise GoTimeError("hour out of range")
        elif element in ("3", "03"):
            hour, value = _getnum(value, element == "03")
            if hour > 12:
                raise GoTimeError("hour out of range")
        elif element in ("4", "04"):
            minute, value = _getnum(value, element == "04")
            if minute >= 60:
                raise GoTimeError("minute out of range")
        elif element in ("5", "05"):
            second, value = _getnum(value, element == "05")
            if second >= 60:
                raise GoTimeError("second out of range")
            # a fraction after the seconds is read here, unless the layout has one next
            if (
                len(value) >= 2
                and value[0] in ".,"
                and _digit(value, 1)
                and not _next_element(layout)[1].startswith((".", ","))
            ):
                length = 2
                while _digit(value, length):
                    length += 1
                nanos, value = _nanoseconds(value, length), value[length:]
        elif element in ("PM", "pm"):
            if len(value) < 2 or value[:2] not in (("PM", "AM") if element == "PM" else ("pm", "am")):
                raise GoTimeError("bad value for field")
            pm, am, value = value[:2] in ("PM", "pm"), value[:2] in ("AM", "am"), value[2:]
        elif element[0] in "Z-":
            if element[0] == "Z" and value[:1] == "Z":
                utc, value = True, value[1:]
            else:
                zone_offset, value = _zone_offset(element, value)
        elif element == "MST":
            if value[:3] == "UTC":
                utc, value = True, value[3:]
            else:
                length = _zone_name_length(value)
                if not length:
                    raise GoTimeError("bad value for field")
                zone_name, value = value[:length], value[length:]
        elif element[1] == "0":  # .000: exactly that many digits
            if len(value) < len(element):
                raise GoTimeError("bad value for field")
            nanos, value = _nanoseconds(value, len(element)), value[len(element) :]
        elif len(value) >= 2 and value[0] in ".," and _digit(value, 1):  # .999: any digits, or none
            length = 1
            while _digit(value, length):
                length += 1
            nanos, value = _nanoseconds(value, length), value[length:]
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    if year_day >= 0:
        month, day = _month_and_day(year, year_day, month, day)
    else:
        month, day = (1 if month < 0 else month), (1 if day < 0 else day)
    if not 1 <= day <= calendar.monthrange(2000 if calendar.isleap(year) else 2001, month)[1]:
        raise GoTimeError("parsing time: day out of range")
    wall = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    if utc:
        return checked_ns(wall, nanos)
    if zone_offset is not None:
        return checked_ns(wall - zone_offset, nanos)
    if zone_name:
        # An abbreviation the local zone does not know is read as UTC: Go labels the time with
        # it (GMT+3 with its offset) but leaves the instant at the wall time read as UTC.
        offset = _abbreviation_offset(zone_name, wall)
        return checked_ns(wall - (offset or 0), nanos)
    return checked_ns(wall, nanos)


def _month_and_day(year: int, year_day: int, month: int, day: int) -> tuple[int, int]:
    """The month and day of a day of the year, which must agree with any month and day parsed."""
    leap = calendar.isleap(year)
    if leap and year_day == 31 + 29:
        found_month, found_day = 2, 29
    else:
        if leap and year_day > 31 + 29:
            year_day -= 1
        if not 1 <= year_day <= 365:
            raise GoTimeError("parsing time: day-of-year out of range")
        before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365]
        found_month = next(m for m in range(1, 13) if before[m] >= year_day)
        found_day = year_day - before[found_month - 1]
    if month >= 0 and month != found_month:
        raise GoTimeError("parsing time: day-of-year does not match month")
    if day >= 0 and day != found_day:
        raise GoTimeError("parsing time: day-of-year does not match day")
    return found_month, found_day
