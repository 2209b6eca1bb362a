"""Change windows and freezes: the calendar arithmetic behind ``input.facts.windows``. Pure.

Python does the calendar work (IANA zones, DST, holidays, cron) so that Rego only
judges. A definition comes from a data file or a ``ChangeFreeze`` / ``ChangeWindow``
object; both are parsed by :func:`parse_entry`, which rejects malformed ones with a
message a person can act on. Every local time is wall-clock time in the entry's zone:
a window "22:00-06:00" lasts 7 hours on the night clocks go forward and 9 when they
go back, and a time that does not exist (the spring-forward gap) is taken as the
instant after the gap, as ``zoneinfo`` does with ``fold=0``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from croniter import croniter

from webhook.errors import DeployguardError

Effect = Literal["block", "allow"]
FOREVER = datetime.max.replace(tzinfo=UTC)
BEGINNING = datetime.min.replace(tzinfo=UTC)
# What a freeze blocks unless it says otherwise: changes that start new pods from a new
# template or other spec. Scale, rollback, controller replicas, metadata and deletes pass.
DEFAULT_CHANGE_TYPES = ("create", "rollout", "update")
KNOWN_CHANGE_TYPES = frozenset(
    {"create", "rollout", "update", "scale", "rollback", "replica", "metadata-only", "no-op", "delete"}
)
KINDS = ("ChangeFreeze", "ClusterChangeFreeze", "ChangeWindow", "ClusterChangeWindow")
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$|^24:00$")
_CRON_MAX_OCCURRENCES = 5000


class CalendarError(DeployguardError):
    """A window or freeze definition is malformed; the message names it and the field."""


@dataclass(frozen=True)
class WeeklyRange:
    """On these weekdays (0 = Monday), from ``start`` to ``end`` local time; end <= start spans midnight."""

    days: tuple[int, ...]
    start: time
    end: time  # time(0, 0) with end_of_day=True means 24:00
    end_of_day: bool = False


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    duration: timedelta


@dataclass(frozen=True)
class HolidayCalendar:
    country: str
    subdivision: str | None = None


@dataclass(frozen=True)
class NamedDate:
    day: date
    name: str


@dataclass(frozen=True)
class CalendarEntry:
    """One freeze or window, with its scope. ``effect`` block: no changes inside; allow: only inside."""

    kind: str
    name: str
    namespace: str  # "" for cluster-wide and data entries
    source: str  # "ChangeFreeze shop/incident-42", "file change-windows.yaml"
    effect: Effect
    reason: str
    declared_by: str
    ticket: str
    zone: str
    start: datetime | None = None
    end: datetime | None = None
    weekly: tuple[WeeklyRange, ...] = ()
    cron: CronSchedule | None = None
    holidays: HolidayCalendar | None = None
    dates: tuple[NamedDate, ...] = ()
    namespaces: tuple[str, ...] = ()  # globs; empty: every namespace
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    change_types: tuple[str, ...] = DEFAULT_CHANGE_TYPES

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def one_off(self) -> bool:
        """Start/end only (or neither: an incident freeze that lasts until it is deleted)."""
        return not (self.weekly or self.cron or self.holidays or self.dates)

    def applies_to(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.namespace and namespace != self.namespace:
            return False
        if self.namespaces and not any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces):
            return False
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        return all(_expression_matches(labels, *e) for e in self.match_expressions)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    label: str = ""  # e.g. the holiday's name

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def _expression_matches(labels: Mapping[str, str], key: str, operator: str, values: tuple[str, ...]) -> bool:
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist


# --------------------------------------------------------------------------- parsing


def parse_entry(kind: str, name: str, namespace: str, spec: Any, *, source: str) -> CalendarEntry:
    """Validate one definition (a CRD's spec or a data-file item); raise CalendarError saying what is wrong."""
    where = f"{source}: " if source else ""
    if kind not in KINDS:
        raise CalendarError(f"{where}kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(name, str) or not name:
        raise CalendarError(f"{where}{kind} has no name")
    if not isinstance(spec, Mapping):
        raise CalendarError(f"{where}spec must be a mapping")
    errors: list[str] = []
    known = {
        "reason", "declaredBy", "ticket", "timeZone", "start", "end", "weekly", "cron", "holidays",
        "dates", "mode", "changeTypes", "selector", "namespaces",
    }  # fmt: skip
    extra = sorted(set(spec) - known)
    if extra:
        errors.append(f"unknown field(s) {extra}")
    zone = spec.get("timeZone", "UTC")
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) and zone else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if tz is None:
        errors.append(f"timeZone {zone!r} is not an IANA time zone (e.g. Europe/Berlin)")
        tz = ZoneInfo("UTC")
    reason = _text(spec, "reason", errors, required=True)
    declared_by = _text(spec, "declaredBy", errors, required=kind.endswith("Freeze"))
    ticket = _text(spec, "ticket", errors)
    is_freeze = kind.endswith("Freeze")
    mode = spec.get("mode", "Blocked")
    if mode not in ("Blocked", "Allowed") or (is_freeze and mode != "Blocked"):
        errors.append("mode must be Blocked or Allowed (a freeze is always Blocked)")
    start = _instant(spec.get("start"), tz, "start", errors)
    end = _instant(spec.get("end"), tz, "end", errors)
    if start and end and end <= start:
        errors.append(f"end ({spec.get('end')}) is not after start ({spec.get('start')})")
    weekly = _weekly(spec.get("weekly"), errors)
    cron = _cron(spec.get("cron"), errors)
    hol = _holidays(spec.get("holidays"), errors)
    dates = _dates(spec.get("dates"), errors)
    recurring = bool(weekly or cron or hol or dates)
    if not is_freeze and not recurring and not (start and end):
        errors.append("a window needs a schedule: weekly, cron, holidays, dates, or start and end")
    if recurring and (start or end):
        errors.append("start/end and a recurring schedule (weekly, cron, holidays, dates) do not mix; use two objects")
    change_types = spec.get("changeTypes", list(DEFAULT_CHANGE_TYPES))
    if not isinstance(change_types, list) or not all(isinstance(c, str) for c in change_types) or not change_types:
        errors.append("changeTypes must be a non-empty list of change types")
        change_types = list(DEFAULT_CHANGE_TYPES)
    bad_types = sorted(set(change_types) - KNOWN_CHANGE_TYPES)
    if bad_types:
        errors.append(f"changeTypes {bad_types} are not change types ({', '.join(sorted(KNOWN_CHANGE_TYPES))})")
    namespaces = spec.get("namespaces", [])
    if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
        errors.append("namespaces must be a list of namespace names or globs")
        namespaces = []
    if namespaces and namespace:
        errors.append("namespaces applies to cluster-wide definitions only; a namespaced one covers its namespace")
    labels, expressions = _selector(spec.get("selector"), errors)
    if errors:
        raise CalendarError(f"{where}{kind} {_display(namespace, name)} is invalid: " + "; ".join(errors))
    return CalendarEntry(
        kind=kind,
        name=name,
        namespace=namespace,
        source=source,
        effect="allow" if mode == "Allowed" else "block",
        reason=reason,
        declared_by=declared_by,
        ticket=ticket,
        zone=str(tz.key),
        start=start,
        end=end,
        weekly=weekly,
        cron=cron,
        holidays=hol,
        dates=dates,
        namespaces=tuple(namespaces),
        match_labels=labels,
        match_expressions=expressions,
        change_types=tuple(change_types),
    )


def parse_object(obj: Any, *, source: str = "") -> CalendarEntry:
    """A Kubernetes object (``kind``, ``metadata``, ``spec``) or a data-file item in the same shape."""
    if not isinstance(obj, Mapping):
        raise CalendarError(f"{source or 'definition'}: must be a mapping with kind, metadata and spec")
    raw_meta = obj.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    kind = str(obj.get("kind", ""))
    name = str(meta.get("name", ""))
    namespace = str(meta.get("namespace", "") or "") if not kind.startswith("Cluster") else ""
    label = source or f"{kind} {_display(namespace, name)}"
    return parse_entry(kind, name, namespace, obj.get("spec", {}), source=label)


def parse_documents(items: Iterable[Any], *, source: str) -> tuple[list[CalendarEntry], list[str]]:
    """Every valid entry, and one error message per invalid one (reported, never silently dropped)."""
    entries: list[CalendarEntry] = []
    errors: list[str] = []
    for index, item in enumerate(items):
        try:
            entries.append(parse_object(item, source=f"{source}[{index}]"))
        except CalendarError as exc:
            errors.append(str(exc))
    return entries, errors


def _display(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _text(spec: Mapping[str, Any], key: str, errors: list[str], *, required: bool = False) -> str:
    value = spec.get(key, "")
    if not isinstance(value, str):
        errors.append(f"{key} must be a string")
        return ""
    if required and not value.strip():
        errors.append(f"{key} is required (say {'why' if key == 'reason' else 'who'})")
    return value.strip()


def _instant(value: Any, tz: ZoneInfo, key: str, errors: list[str]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{key} {value!r} is not an ISO 8601 time (e.g. 2026-12-24T18:00:00+01:00)")
            return None
    else:
        errors.append(f"{key} must be an ISO 8601 time")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def parse_duration(value: Any) -> timedelta:
    """``2h``, ``1h30m``, ``1d``, ``90s``; raise ValueError otherwise."""
    match = _DURATION.match(value) if isinstance(value, str) and value else None
    if not match or not any(match.groups()):
        raise ValueError(f"duration {value!r} is not like 30m, 2h, 1h30m or 1d")
    d, h, m, s = (int(g or 0) for g in match.groups())
    result = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if result <= timedelta(0):
        raise ValueError(f"duration {value!r} must be positive")
    return result


def _clock(value: Any, key: str, errors: list[str]) -> tuple[time, bool]:
    if not isinstance(value, str) or not _CLOCK.match(value):
        errors.append(f"weekly {key} {value!r} is not a time of day HH:MM (00:00-24:00)")
        return time(0), False
    if value == "24:00":
        return time(0), True
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes)), False


def _weekly(raw: Any, errors: list[str]) -> tuple[WeeklyRange, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append("weekly must be a list of {days, from, to}")
        return ()
    ranges = []
    for item in raw:
        if not isinstance(item, Mapping):
            errors.append("weekly items must be mappings {days, from, to}")
            continue
        days_raw = item.get("days", list(_DAYS))
        days: list[int] = []
        for day in days_raw if isinstance(days_raw, list) else [days_raw]:
            key = str(day).strip().lower()[:3]
            if key not in _DAYS or not str(day).strip():
                errors.append(f"weekly day {day!r} is not a weekday (Mon..Sun)")
            else:
                days.append(_DAYS[key])
        start, start_eod = _clock(item.get("from"), "from", errors)
        end, end_eod = _clock(item.get("to"), "to", errors)
        if start_eod:
            errors.append("weekly from cannot be 24:00")
        if start == end and not end_eod:
            errors.append(f"weekly range {item.get('from')}-{item.get('to')} is empty")
        ranges.append(WeeklyRange(days=tuple(sorted(set(days))), start=start, end=end, end_of_day=end_eod))
    return tuple(ranges)


def _cron(raw: Any, errors: list[str]) -> CronSchedule | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        errors.append("cron must be {expression, duration}")
        return None
    expression = raw.get("expression")
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        errors.append(f"cron expression {expression!r} is not a valid cron expression (e.g. '0 22 * * 5')")
        expression = ""
    try:
        duration = parse_duration(raw.get("duration"))
    except ValueError as exc:
        errors.append(f"cron {exc}")
        duration = timedelta(hours=1)
    return CronSchedule(expression=expression, duration=duration)


def _holidays(raw: Any, errors: list[str]) -> HolidayCalendar | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("country"), str):
        errors.append("holidays must be {country: DE, subdivision: BY} (ISO 3166 codes)")
        return None
    country, subdivision = raw["country"], raw.get("subdivision")
    try:
        holidays_lib.country_holidays(country, subdiv=subdivision, years=[2026])
    except NotImplementedError:
        errors.append(f"holidays: no calendar for country {country!r} (ISO 3166-1 alpha-2, e.g. DE, US)")
    except Exception as exc:  # the library reports unknown subdivisions with its own exceptions
        errors.append(f"holidays: {exc}")
    return HolidayCalendar(country=country, subdivision=subdivision if isinstance(subdivision, str) else None)


def _dates(raw: Any, errors: list[str]) -> tuple[NamedDate, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append("dates must be a list of {date, name}")
        return ()
    result = []
    for item in raw:
        value = item.get("date") if isinstance(item, Mapping) else None
        name = item.get("name", "") if isinstance(item, Mapping) else ""
        if isinstance(value, datetime):
            value = value.date()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = date.fromisoformat(value)
        if not isinstance(value, date):
            errors.append(f"dates item {item!r} needs date: YYYY-MM-DD")
            continue
        result.append(NamedDate(day=value, name=str(name)))
    return tuple(result)


def _selector(
    raw: Any, errors: list[str]
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]:
    if raw is None:
        return (), ()
    if not isinstance(raw, Mapping):
        errors.append("selector must be {matchLabels, matchExpressions}")
        return (), ()
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        errors.append("selector.matchLabels must map label keys to string values")
        labels = {}
    expressions = []
    for expr in raw.get("matchExpressions") or []:
        op = expr.get("operator") if isinstance(expr, Mapping) else None
        if op not in ("In", "NotIn", "Exists", "DoesNotExist") or not isinstance(expr.get("key"), str):
            errors.append(
                f"selector.matchExpressions item {expr!r} needs key and operator In/NotIn/Exists/DoesNotExist"
            )
            continue
        expressions.append((expr["key"], op, tuple(str(v) for v in expr.get("values") or ())))
    return tuple(sorted((str(k), v) for k, v in labels.items())), tuple(expressions)


# --------------------------------------------------------------------------- intervals


def _local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """Wall-clock ``clock`` on ``day`` in ``tz`` as UTC (a time in the DST gap falls after the gap)."""
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def _whole_day(day: date, tz: ZoneInfo, label: str) -> Interval:
    return Interval(_local(day, time(0), tz), _local(day + timedelta(days=1), time(0), tz), label)


def intervals(entry: CalendarEntry, lo: datetime, hi: datetime) -> list[Interval]:
    """The entry's active intervals that overlap [lo, hi), in UTC, sorted and merged."""
    tz = entry.tz
    found: list[Interval] = []
    if entry.one_off:
        found.append(Interval(entry.start or BEGINNING, entry.end or FOREVER))
    first_day = lo.astimezone(tz).date() - timedelta(days=1)
    last_day = hi.astimezone(tz).date() + timedelta(days=1)
    day_count = (last_day - first_day).days + 1
    for rng in entry.weekly:
        for offset in range(day_count):
            day = first_day + timedelta(days=offset)
            if day.weekday() not in rng.days:
                continue
            spans_midnight = rng.end_of_day or rng.end <= rng.start
            end_day = day + timedelta(days=1) if spans_midnight else day
            found.append(Interval(_local(day, rng.start, tz), _local(end_day, rng.end, tz)))
    if entry.cron is not None:
        start_local = (lo - entry.cron.duration).astimezone(tz)
        it = croniter(entry.cron.expression, start_local)
        for _ in range(_CRON_MAX_OCCURRENCES):
            begin = it.get_next(datetime).astimezone(UTC)
            if begin >= hi:
                break
            found.append(Interval(begin, begin + entry.cron.duration))
    if entry.holidays is not None:
        years = list(range(first_day.year, last_day.year + 1))
        calendar = holidays_lib.country_holidays(entry.holidays.country, subdiv=entry.holidays.subdivision, years=years)
        for day, name in sorted(calendar.items()):
            if first_day <= day <= last_day:
                found.append(_whole_day(day, tz, str(name)))
    for named in entry.dates:
        if first_day <= named.day <= last_day:
            found.append(_whole_day(named.day, tz, named.name))
    return _merge([i for i in found if i.end > lo and i.start < hi])


def _merge(items: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for item in sorted(items, key=lambda i: (i.start, i.end)):
        if merged and item.start <= merged[-1].end:
            last = merged[-1]
            label = last.label if not item.label or item.label == last.label else f"{last.label}, {item.label}"
            merged[-1] = Interval(last.start, max(last.end, item.end), label)
        else:
            merged.append(item)
    return merged


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class ActiveEntry:
    entry: CalendarEntry
    interval: Interval  # the current one (merged), or for an allow window: the next one


@dataclass(frozen=True)
class Verdict:
    """What the calendar says about one change at one instant."""

    now: datetime
    blocking: tuple[ActiveEntry, ...]  # block entries active now
    allow_windows: tuple[CalendarEntry, ...]  # allow windows that apply to this change
    inside_allowed: bool  # true when there are none, or one is open now
    opens_at: datetime | None  # when the change could go through; None: not within the horizon


def evaluate(
    entries: Sequence[CalendarEntry],
    *,
    now: datetime,
    namespace: str,
    labels: Mapping[str, str],
    change_type: str,
    horizon: timedelta = timedelta(days=92),
) -> Verdict:
    """Which entries stop this change now, and when it could go through next."""
    hi = now + horizon
    relevant = [e for e in entries if change_type in e.change_types and e.applies_to(namespace, labels)]
    blocks = [(e, intervals(e, now, hi)) for e in relevant if e.effect == "block"]
    allows = [(e, intervals(e, now, hi)) for e in relevant if e.effect == "allow"]
    blocking = tuple(
        ActiveEntry(e, i) for e, spans in blocks for i in spans if i.contains(now)
    )  # fmt: skip
    inside_allowed = not allows or any(i.contains(now) for _, spans in allows for i in spans)

    def free(instant: datetime) -> bool:
        if any(i.contains(instant) for _, spans in blocks for i in spans):
            return False
        return not allows or any(i.contains(instant) for _, spans in allows for i in spans)

    candidates = {now}
    candidates.update(i.end for _, spans in blocks for i in spans if now < i.end < hi)
    candidates.update(i.start for _, spans in allows for i in spans if now < i.start < hi)
    opens_at = next((c for c in sorted(candidates) if free(c)), None)
    return Verdict(
        now=now,
        blocking=blocking,
        allow_windows=tuple(e for e, _ in allows),
        inside_allowed=inside_allowed,
        opens_at=opens_at,
    )


def floor_minute(instant: datetime) -> datetime:
    """Minute resolution: the decision memo keys on the facts, so they must not change every second."""
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


def local_text(instant: datetime | None, tz: ZoneInfo) -> str:
    """``2026-12-24T18:00+01:00`` in ``tz``; "" for never/unknown."""
    if instant is None or instant in (FOREVER, BEGINNING):
        return ""
    return instant.astimezone(tz).isoformat(timespec="minutes")


def human_text(instant: datetime | None, tz: ZoneInfo) -> str:
    """``2026-12-24 18:00 CET (Europe/Berlin)`` for messages; "" for never/unknown."""
    if instant is None or instant in (FOREVER, BEGINNING):
        return ""
    local = instant.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({tz.key})"
