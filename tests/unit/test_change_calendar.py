"""Calendar arithmetic of change windows and freezes: zones, DST, holidays, midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from webhook.facts.windows import window_facts
from webhook.governance.calendar_sources import Snapshot, parse_items
from webhook.governance.change_calendar import CalendarError, evaluate, intervals, parse_entry, parse_object

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def entry(kind: str = "ClusterChangeWindow", **spec: Any) -> Any:
    spec.setdefault("reason", "test")
    spec.setdefault("declaredBy", "sre")
    return parse_entry(kind, "w", "", spec, source="test")


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def verdict(e: Any, now: datetime, change_type: str = "rollout", namespace: str = "shop") -> Any:
    return evaluate([e], now=now, namespace=namespace, labels={"app": "web"}, change_type=change_type)


def test_nightly_window_spans_midnight() -> None:
    e = entry(mode="Blocked", timeZone="Europe/Berlin", weekly=[{"days": ["Fri"], "from": "22:00", "to": "06:00"}])
    # Friday 2026-03-13 23:30 and Saturday 05:59 are inside; Saturday 06:00 is not.
    assert verdict(e, at(BERLIN, 2026, 3, 13, 23, 30)).blocking
    assert verdict(e, at(BERLIN, 2026, 3, 14, 5, 59)).blocking
    assert not verdict(e, at(BERLIN, 2026, 3, 14, 6, 0)).blocking
    assert not verdict(e, at(BERLIN, 2026, 3, 13, 21, 59)).blocking
    assert verdict(e, at(BERLIN, 2026, 3, 14, 1, 0)).opens_at == at(BERLIN, 2026, 3, 14, 6, 0)


def test_berlin_spring_forward_night_is_one_hour_shorter() -> None:
    # 2026-03-29: Europe/Berlin jumps from 02:00 CET to 03:00 CEST.
    e = entry(timeZone="Europe/Berlin", weekly=[{"days": ["Sat"], "from": "22:00", "to": "06:00"}])
    (span,) = intervals(e, at(BERLIN, 2026, 3, 28, 12, 0), at(BERLIN, 2026, 3, 29, 12, 0))
    assert span.end - span.start == timedelta(hours=7)
    assert span.end.astimezone(BERLIN).strftime("%H:%M %Z") == "06:00 CEST"
    assert span.start == datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    assert span.end == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)  # 06:00 CEST


def test_berlin_fall_back_night_is_one_hour_longer() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET.
    e = entry(timeZone="Europe/Berlin", weekly=[{"days": ["Sat"], "from": "22:00", "to": "06:00"}])
    (span,) = intervals(e, at(BERLIN, 2026, 10, 24, 12, 0), at(BERLIN, 2026, 10, 25, 12, 0))
    assert span.end - span.start == timedelta(hours=9)


def test_new_york_dst_day_keeps_wall_clock_business_hours() -> None:
    # 2026-03-08: America/New_York springs forward; 09:00-17:00 stays 09:00-17:00 local.
    e = entry(
        mode="Allowed", timeZone="America/New_York", weekly=[{"days": ["Sun", "Mon"], "from": "09:00", "to": "17:00"}]
    )
    spans = intervals(e, at(NEW_YORK, 2026, 3, 7, 12, 0), at(NEW_YORK, 2026, 3, 9, 23, 0))
    assert [s.start for s in spans] == [
        datetime(2026, 3, 8, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
    ]
    assert datetime(2026, 3, 7, 14, 0, tzinfo=UTC) not in [s.start for s in spans]  # Saturday is not a window day
    # Outside the allowed window at 08:30 EDT: it opens at 09:00 EDT = 13:00 UTC (not 14:00 as in winter).
    v = verdict(e, at(NEW_YORK, 2026, 3, 8, 8, 30))
    assert not v.inside_allowed
    assert v.opens_at == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    # The time in the spring-forward gap (02:30 does not exist) is taken as after the gap.
    gap = entry(timeZone="America/New_York", weekly=[{"days": ["Sun"], "from": "02:30", "to": "04:00"}])
    (span,) = intervals(gap, at(NEW_YORK, 2026, 3, 8, 0, 0), at(NEW_YORK, 2026, 3, 8, 12, 0))
    assert span.start.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"


def test_cron_window_across_dst() -> None:
    # Every Sunday 01:00 local for 3 h, in Berlin; on the spring-forward Sunday it still starts 01:00 CET.
    e = entry(timeZone="Europe/Berlin", cron={"expression": "0 1 * * 0", "duration": "3h"})
    spans = intervals(e, at(BERLIN, 2026, 3, 21, 0, 0), at(BERLIN, 2026, 4, 6, 0, 0))
    assert [s.start.astimezone(BERLIN).strftime("%m-%d %H:%M") for s in spans] == [
        "03-22 01:00",
        "03-29 01:00",
        "04-05 01:00",
    ]
    assert verdict(e, at(BERLIN, 2026, 3, 29, 3, 30)).blocking  # 01:00 CET + 3 h = 04:00 CEST


def test_public_holiday_blocks_the_whole_local_day() -> None:
    e = entry("ClusterChangeFreeze", timeZone="Europe/Berlin", holidays={"country": "DE", "subdivision": "BY"})
    # 2026-10-03 is German Unity Day; 2026-10-02 is an ordinary Friday.
    v = verdict(e, at(BERLIN, 2026, 10, 3, 0, 0))
    assert v.blocking[0].interval.label == "German Unity Day"
    assert v.opens_at == at(BERLIN, 2026, 10, 4, 0, 0)
    assert not verdict(e, at(BERLIN, 2026, 10, 2, 23, 59)).blocking
    # Christmas Day and St Stephen's Day merge into one block: deploys open on the 27th.
    assert verdict(e, at(BERLIN, 2026, 12, 25, 10, 0)).opens_at == at(BERLIN, 2026, 12, 27, 0, 0)


def test_named_company_dates() -> None:
    e = entry(
        "ClusterChangeFreeze", timeZone="America/New_York", dates=[{"date": "2026-11-27", "name": "Black Friday"}]
    )
    v = verdict(e, at(NEW_YORK, 2026, 11, 27, 23, 0))
    assert v.blocking[0].interval.label == "Black Friday"
    assert v.opens_at == at(NEW_YORK, 2026, 11, 28, 0, 0)


def test_freeze_blocks_rollouts_but_not_scale_or_rollback() -> None:
    e = entry("ClusterChangeFreeze", start="2026-06-01T00:00:00Z", end="2026-06-02T00:00:00Z")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    for change_type in ("create", "rollout", "update"):
        assert verdict(e, now, change_type).blocking
    for change_type in ("scale", "rollback", "replica", "delete", "metadata-only"):
        assert not verdict(e, now, change_type).blocking
    strict = entry("ClusterChangeFreeze", end="2026-06-02T00:00:00Z", changeTypes=["rollout", "scale"])
    assert verdict(strict, now, "scale").blocking


def test_incident_freeze_without_end_has_no_opening_time() -> None:
    e = parse_object({"kind": "ChangeFreeze", "metadata": {"name": "inc-42", "namespace": "shop"},
                      "spec": {"reason": "incident 42", "declaredBy": "alice"}})  # fmt: skip
    v = verdict(e, datetime(2026, 6, 1, tzinfo=UTC))
    assert v.blocking and v.opens_at is None
    assert not verdict(e, datetime(2026, 6, 1, tzinfo=UTC), namespace="other").blocking


def test_scope_by_cluster_namespaces_and_labels() -> None:
    e = entry("ClusterChangeFreeze", namespaces=["shop-*"], selector={"matchLabels": {"tier": "frontend"}})
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert evaluate([e], now=now, namespace="shop-eu", labels={"tier": "frontend"}, change_type="rollout").blocking
    assert not evaluate([e], now=now, namespace="shop-eu", labels={"tier": "db"}, change_type="rollout").blocking
    assert not evaluate([e], now=now, namespace="pay", labels={"tier": "frontend"}, change_type="rollout").blocking
    expr = entry(
        "ClusterChangeFreeze", selector={"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}
    )
    assert not evaluate([expr], now=now, namespace="x", labels={"tier": "db"}, change_type="rollout").blocking


def test_blocked_inside_allowed_window_opens_after_both() -> None:
    allowed = entry(
        mode="Allowed", timeZone="Europe/Berlin", weekly=[{"days": ["Mon", "Tue"], "from": "09:00", "to": "17:00"}]
    )
    freeze = parse_entry("ClusterChangeFreeze", "f", "", {"reason": "x", "declaredBy": "y",
                         "end": "2026-06-01T18:00:00+02:00"}, source="t")  # fmt: skip
    v = evaluate([allowed, freeze], now=at(BERLIN, 2026, 6, 1, 10, 0), namespace="a", labels={}, change_type="rollout")
    assert v.blocking and v.inside_allowed
    assert v.opens_at == at(BERLIN, 2026, 6, 2, 9, 0)  # Monday's window closes before the freeze ends


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"declaredBy": "a"}, "reason is required"),
        ({"reason": "r"}, "declaredBy is required"),
        ({"reason": "r", "declaredBy": "a", "timeZone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"reason": "r", "declaredBy": "a", "start": "tomorrow"}, "not an ISO 8601 time"),
        (
            {"reason": "r", "declaredBy": "a", "start": "2026-06-02T00:00Z", "end": "2026-06-01T00:00Z"},
            "is not after start",
        ),
        (
            {"reason": "r", "declaredBy": "a", "weekly": [{"days": ["Funday"], "from": "9", "to": "17:00"}]},
            "not a weekday",
        ),
        ({"reason": "r", "declaredBy": "a", "cron": {"expression": "every day", "duration": "1h"}}, "not a valid cron"),
        ({"reason": "r", "declaredBy": "a", "cron": {"expression": "0 1 * * *", "duration": "soon"}}, "duration"),
        ({"reason": "r", "declaredBy": "a", "holidays": {"country": "XX"}}, "no calendar for country"),
        ({"reason": "r", "declaredBy": "a", "changeTypes": ["deploy"]}, "are not change types"),
        ({"reason": "r", "declaredBy": "a", "mode": "Allowed"}, "a freeze is always Blocked"),
        ({"reason": "r", "declaredBy": "a", "until": "x"}, "unknown field"),
    ],
)
def test_malformed_freezes_are_rejected_with_the_reason(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(CalendarError, match=expected) as info:
        parse_entry("ChangeFreeze", "bad", "shop", spec, source="ChangeFreeze shop/bad")
    assert "ChangeFreeze shop/bad" in str(info.value)


def test_window_without_schedule_is_rejected() -> None:
    with pytest.raises(CalendarError, match="a window needs a schedule"):
        parse_entry("ChangeWindow", "w", "shop", {"reason": "r"}, source="")


def test_bad_items_are_reported_next_to_the_good_ones() -> None:
    good = {
        "kind": "ChangeFreeze",
        "metadata": {"name": "ok", "namespace": "shop"},
        "spec": {"reason": "r", "declaredBy": "a"},
    }
    bad = {"kind": "ChangeFreeze", "metadata": {"name": "bad", "namespace": "shop"}, "spec": {"declaredBy": "a"}}
    snap = parse_items([good, bad, "garbage"], source="file x.yaml")
    assert [e.name for e in snap.entries] == ["ok"]
    assert [p.namespace for p in snap.problems] == ["shop", ""]
    assert "reason is required" in snap.problems[0].message


def test_facts_are_minute_bucketed_in_the_workload_zone() -> None:
    spec = {"reason": "db migration", "declaredBy": "alice", "end": "2026-06-01T18:00:00Z"}
    e = parse_object({"kind": "ChangeFreeze", "metadata": {"name": "inc", "namespace": "shop"}, "spec": spec})
    facts = [
        window_facts(
            Snapshot((e,)),
            now=datetime(2026, 6, 1, 12, 0, s, tzinfo=UTC),
            namespace="shop",
            labels={},
            annotations={"deployguard.io/time-zone": "America/New_York"},
            change_type="rollout",
            default_zone="UTC",
        )
        for s in (1, 59)
    ]
    assert facts[0] == facts[1]
    assert facts[0]["now"] == "2026-06-01T08:00-04:00"
    assert facts[0]["opens_at"] == "2026-06-01T14:00-04:00"
    assert facts[0]["opens_at_text"] == "2026-06-01 14:00 EDT (America/New_York)"
    assert facts[0]["blocking"][0]["declared_by"] == "alice"
