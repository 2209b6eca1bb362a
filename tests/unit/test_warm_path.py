"""The warm path's shortcuts keep behaviour: eager fact gathering, the windows LRU,
memoised image parsing, cached metric children, the serving event loop."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests import factories
from webhook.admission import parse_review
from webhook.errors import ConfigError
from webhook.facts import gather_facts
from webhook.facts.windows import WindowsGatherer
from webhook.governance.calendar_sources import FileSource, Snapshot
from webhook.governance.change_calendar import parse_object
from webhook.images import parse_image
from webhook.observe.audit_record import utc_now
from webhook.observe.metric_buffer import PENDING
from webhook.observe.metrics import MetricsObserver
from webhook.policy_input import Subject
from webhook.serve import event_loop_factory
from webhook.workloads import ChangeType, WorkloadKinds


def _subject(labels: dict[str, str] | None = None, namespace: str = "shop") -> Subject:
    obj = factories.workload("Deployment", "nginx:1.27", namespace=namespace)
    if labels is not None:
        obj["metadata"]["labels"] = labels
    request = parse_review(factories.admission_review(obj))
    template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", request.subject)
    return Subject(request=request, change=ChangeType.CREATE, template=template)


class Instant:
    """Answers without awaiting anything (the warm path of most gatherers)."""

    eager = True

    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value, self.calls = name, value, 0

    async def gather(self, subject: Subject) -> Any:
        self.calls += 1
        return self.value


class Waits:
    """Awaits ``delay`` seconds before answering, or raising ``error``; ``eager`` breaks the marker's promise."""

    def __init__(
        self, name: str, delay: float, value: Any = None, error: Exception | None = None, *, eager: bool = False
    ) -> None:
        self.name, self.delay, self.value, self.error, self.eager = name, delay, value, error, eager
        self.cancelled = False

    async def gather(self, subject: Subject) -> Any:
        try:
            await asyncio.sleep(self.delay)
            await asyncio.sleep(0)  # a bare yield after a real wait: the resumed coroutine must cope
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.value


class FailsAtOnce:
    name = "fails"
    eager = True

    async def gather(self, subject: Subject) -> Any:
        raise RuntimeError("registry said no")


@pytest.mark.parametrize("eager", [False, True], ids=["task", "inline-then-task"])
async def test_gatherers_that_do_not_wait_and_those_that_do_all_land_in_the_facts(eager: bool) -> None:
    waits = Waits("registry", 0.01, {"digest": "sha256:ab"}, eager=eager)
    gatherers = [Instant("clock", {"now": 1}), waits, FailsAtOnce()]
    facts, timings = await gather_facts(gatherers, _subject(), 5.0)
    assert facts == {
        "clock": {"now": 1},
        "registry": {"digest": "sha256:ab"},
        "fails": {"status": "unknown", "error": "fails: registry said no"},
    }
    assert set(timings) == {"facts.clock", "facts.registry", "facts.fails"}


async def test_an_error_after_a_wait_is_an_unknown_fact() -> None:
    facts, _ = await gather_facts([Waits("budgets", 0.01, error=ValueError("prometheus down"))], _subject(), 5.0)
    assert facts["budgets"] == {"status": "unknown", "error": "budgets: prometheus down"}


@pytest.mark.parametrize("eager", [False, True], ids=["task", "inline-then-task"])
async def test_a_late_gatherer_is_cancelled_and_unknown_while_the_quick_ones_count(eager: bool) -> None:
    slow = Waits("budgets", 30.0, {"never": True}, eager=eager)
    facts, timings = await gather_facts([Instant("windows", {"status": "ok"}), slow], _subject(), 0.05)
    assert facts["windows"] == {"status": "ok"}
    assert facts["budgets"]["status"] == "unknown" and "deadline" in facts["budgets"]["error"]
    assert slow.cancelled
    assert "facts.budgets" in timings


async def test_no_time_left_leaves_only_what_needs_no_waiting() -> None:
    # As before eager starts: a gatherer that never waits finished ahead of a zero timeout too.
    facts, _ = await gather_facts([Instant("windows", {"status": "ok"}), Waits("budgets", 0.01, 1)], _subject(), 0.0)
    assert facts["windows"] == {"status": "ok"}
    assert facts["budgets"]["status"] == "unknown"


@pytest.mark.parametrize("eager", [False, True], ids=["task", "inline-then-task"])
async def test_cancelling_the_review_cancels_a_waiting_gatherer(eager: bool) -> None:
    slow = Waits("registry", 30.0, eager=eager)
    task = asyncio.ensure_future(gather_facts([slow], _subject(), 60.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.cancelled


class Calendar:
    """A calendar source whose snapshot the test replaces (as a watch or a file change would)."""

    name = "test"

    def __init__(self) -> None:
        self.current = Snapshot()
        self.asked = 0

    def snapshot(self) -> Snapshot:
        self.asked += 1
        return self.current


FREEZE = parse_object({"kind": "ChangeFreeze", "metadata": {"name": "inc-42", "namespace": "shop"},
                       "spec": {"reason": "incident 42", "declaredBy": "alice"}})  # fmt: skip


async def test_window_facts_are_reused_within_a_minute_and_not_beyond() -> None:
    now = [datetime(2026, 6, 1, 10, 0, 5, tzinfo=UTC)]
    gatherer = WindowsGatherer([Calendar()], clock=lambda: now[0])
    first = await gatherer.gather(_subject())
    now[0] += timedelta(seconds=50)  # same minute
    assert await gatherer.gather(_subject()) is first
    now[0] += timedelta(seconds=10)  # the next minute
    later = await gatherer.gather(_subject())
    assert later is not first and later["now"] == "2026-06-01T10:01+00:00" and first["now"] == "2026-06-01T10:00+00:00"


async def test_a_new_freeze_applies_to_the_very_next_request() -> None:
    calendar = Calendar()
    gatherer = WindowsGatherer([calendar], clock=lambda: datetime(2026, 6, 1, 10, tzinfo=UTC))
    assert (await gatherer.gather(_subject()))["blocking"] == []
    calendar.current = Snapshot(entries=(FREEZE,))  # the watch saw a ChangeFreeze
    blocking = (await gatherer.gather(_subject()))["blocking"]
    assert [b["name"] for b in blocking] == ["inc-42"]
    calendar.current = Snapshot()  # lifted
    assert (await gatherer.gather(_subject()))["blocking"] == []


async def test_window_facts_differ_by_namespace_labels_and_zone() -> None:
    calendar = Calendar()
    calendar.current = Snapshot(entries=(FREEZE,))
    gatherer = WindowsGatherer([calendar], clock=lambda: datetime(2026, 6, 1, 10, tzinfo=UTC))
    shop = await gatherer.gather(_subject())
    other = await gatherer.gather(_subject(namespace="other"))
    berlin = await gatherer.gather(_subject({"app": "web", "deployguard.io/time-zone": "Europe/Berlin"}))
    assert shop["blocking"] and not other["blocking"]
    assert shop["zone"] == "UTC" and berlin["zone"] == "Europe/Berlin"


def test_parsed_images_are_reused_and_bad_input_still_parses_to_an_error() -> None:
    assert parse_image("nginx:1.27") is parse_image("nginx:1.27")
    assert parse_image("nginx:1.27").normalized == "docker.io/library/nginx:1.27"
    assert parse_image(None).error  # type: ignore[arg-type]
    long = "registry.example/" + "a" * 2000
    assert parse_image(long).error == parse_image(long).error != ""


def test_a_templates_containers_are_computed_once() -> None:
    template = _subject().template
    assert template is not None
    assert template.containers is template.containers
    assert [c.image for c in template.containers] == ["nginx:1.27"]


def _sample(name: str, labels: dict[str, str]) -> float:
    PENDING.flush()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_every_decision_through_the_cached_children() -> None:
    observer = MetricsObserver(kinds={"Deploy ment"})  # a configured kind, sanitised for the wire
    labels = {"operation": "CREATE", "kind": "Deploy ment", "decision": "denied", "dry_run": "false"}
    wire = {**labels, "kind": "Deploy_ment"}  # sanitised on the way in
    before = _sample("deployguard_admission_requests_total", wire)
    rule = {"rule": "digest_pinning", "mode": "deny"}
    rule_before = _sample("deployguard_rule_findings_total", rule)
    phase_before = _sample("deployguard_phase_duration_seconds_count", {"phase": "facts.windows"})
    record = {"outcome": "denied", "operation": "CREATE", "kind": "Deploy ment", "dry_run": False,
              "findings": [rule], "memo_hit": True}  # fmt: skip
    for _ in range(3):
        observer.observe(record, {"facts.windows": 0.001, "evaluate": 0.001, "total": 0.002})
    observer.observe({**record, "kind": ["not", "hashable"]}, {})
    assert _sample("deployguard_admission_requests_total", wire) == before + 3
    assert _sample("deployguard_rule_findings_total", rule) == rule_before + 4
    assert _sample("deployguard_phase_duration_seconds_count", {"phase": "facts.windows"}) == phase_before + 3


def test_invented_kinds_share_one_series() -> None:
    """A request's kind is whatever its sender wrote, and prometheus-client keeps every label set:
    5,000 invented kinds were 5,000 series, in memory and in every scrape, for ever."""
    observer = MetricsObserver()
    other = {"operation": "CREATE", "kind": "other", "decision": "allowed", "dry_run": "false"}
    known = {**other, "kind": "StatefulSet"}
    before, known_before = _sample("deployguard_admission_requests_total", other), _sample(
        "deployguard_admission_requests_total", known
    )
    record = {"outcome": "allowed", "operation": "CREATE", "dry_run": False}
    for i in range(5000):
        observer.observe({**record, "kind": f"Invented{i}"}, {})
    observer.observe({**record, "kind": "StatefulSet"}, {})
    PENDING.flush()
    series = {s.labels["kind"] for m in REGISTRY.collect() if m.name == "deployguard_admission_requests"
              for s in m.samples}  # fmt: skip
    assert not any(kind.startswith("Invented") for kind in series)
    assert _sample("deployguard_admission_requests_total", other) == before + 5000
    assert _sample("deployguard_admission_requests_total", known) == known_before + 1


def test_the_event_loop_setting() -> None:
    import uvloop  # uvicorn[standard] brings it

    assert event_loop_factory("asyncio") is asyncio.SelectorEventLoop
    assert event_loop_factory("auto") is uvloop.Loop
    assert event_loop_factory("uvloop") is uvloop.Loop
    assert issubclass(event_loop_factory("auto", tls_handshake_timeout=10), uvloop.Loop)  # type: ignore[arg-type]
    assert issubclass(event_loop_factory("asyncio", tls_handshake_timeout=10), asyncio.SelectorEventLoop)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"server\.event_loop"):
        event_loop_factory("trio")


FREEZE_FILE = """windows:
  - kind: ClusterChangeFreeze
    metadata: {name: %s}
    spec: {reason: year end, declaredBy: sre, start: "2026-12-20T00:00:00Z", end: "2027-01-02T00:00:00Z"}
"""


def test_calendar_files_are_checked_at_most_every_recheck_interval(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text(FREEZE_FILE % "holidays")
    now = [100.0]
    source = FileSource([path], recheck_seconds=1.0, clock=lambda: now[0])
    first = source.snapshot()
    assert [e.name for e in first.entries] == ["holidays"], first
    path.write_text(FREEZE_FILE % "year-end-freeze")
    now[0] += 0.5
    assert source.snapshot() is first  # inside the interval: no stat, the same snapshot
    now[0] += 0.6
    assert [e.name for e in source.snapshot().entries] == ["year-end-freeze"]
    assert source.snapshot() is source.snapshot()


def test_utc_now_keeps_its_format() -> None:
    stamp = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5
