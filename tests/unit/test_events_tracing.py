"""Kubernetes Events (queued, rate-limited, never blocking) and OpenTelemetry spans per decision."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from webhook.observe.events import EventRecorder
from webhook.observe.metric_buffer import PENDING
from webhook.observe.tracing import TracingObserver


def denied(name: str = "web", *, dry_run: bool = False, outcome: str = "denied") -> dict[str, Any]:
    return {
        "decision_id": "abc123", "outcome": outcome, "operation": "CREATE", "dry_run": dry_run,
        "group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop", "name": name,
        "findings": [{"rule": "digest_pinning", "mode": "deny" if outcome == "denied" else "warn",
                      "message": 'container "web" image "nginx:latest" is not pinned by digest'}],
    }


def counted() -> dict[str, float]:
    """deployguard_kubernetes_events_total by result, and the kubernetes upstream errors, as a scrape shows them."""
    PENDING.flush()
    values = {result: REGISTRY.get_sample_value("deployguard_kubernetes_events_total", {"result": result}) or 0.0
              for result in ("sent", "failed", "rate_limited", "dropped")}
    upstream = REGISTRY.get_sample_value("deployguard_upstream_errors_total", {"upstream": "kubernetes"})
    values["upstream"] = upstream or 0.0
    return values


def grown(before: dict[str, float]) -> dict[str, float]:
    return {key: value - before[key] for key, value in counted().items() if value != before[key]}


class FakeSink:
    """Our EventSink interface, remembering what it was given; can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("API server down")
        self.created.append((namespace, body))


async def test_a_denial_becomes_an_event_on_the_workload() -> None:
    sink = FakeSink()
    recorder = EventRecorder(sink)
    task = asyncio.create_task(recorder.run())
    recorder.observe(denied(), {})
    before = counted()
    await asyncio.wait_for(recorder.queue.join(), 5)
    task.cancel()
    assert grown(before) == {"sent": 1.0}
    [(namespace, body)] = sink.created
    assert namespace == "shop" and body["reason"] == "DeployDenied" and body["type"] == "Warning"
    assert body["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop",
                                      "name": "web"}
    assert "(decision abc123)" in body["message"] and "[digest_pinning]" in body["message"]


def test_repeats_are_rate_limited_per_object_and_a_full_queue_drops() -> None:
    now = [0.0]
    before = counted()
    recorder = EventRecorder(FakeSink(), min_interval_seconds=60, queue_size=2, clock=lambda: now[0])
    recorder.observe(denied("a"), {})
    recorder.observe(denied("a"), {})  # same object, same reason, within 60 s: dropped
    recorder.observe(denied("a", outcome="warned"), {})  # another reason: queued
    recorder.observe(denied("b"), {})  # queue full: dropped, not waited for
    assert recorder.queue.qsize() == 2
    now[0] = 61.0
    recorder.queue.get_nowait()
    recorder.observe(denied("a"), {})
    assert recorder.queue.qsize() == 2
    assert grown(before) == {"rate_limited": 1.0, "dropped": 1.0}


def test_no_events_for_allowed_dry_run_or_rejected_calls() -> None:
    recorder = EventRecorder(FakeSink())
    recorder.observe(denied(outcome="allowed"), {})
    recorder.observe(denied(dry_run=True), {})
    recorder.observe({"decision_id": "x", "rejected": True, "outcome": "error"}, {})
    assert recorder.queue.qsize() == 0


async def test_a_failing_api_server_costs_nothing_but_a_log_line_and_counters() -> None:
    before = counted()
    recorder = EventRecorder(FakeSink(fail=True))
    task = asyncio.create_task(recorder.run())
    recorder.observe(denied(), {})
    await asyncio.wait_for(recorder.queue.join(), 5)
    assert not task.done()  # still running for the next Event
    task.cancel()
    assert grown(before) == {"failed": 1.0, "upstream": 1.0}


def test_spans_for_the_request_and_each_phase_carry_the_decision_id() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = TracingObserver(provider.get_tracer("test"))
    timings = {"classify": 0.001, "facts.images": 0.02, "facts.windows": 0.003, "evaluate": 0.002, "total": 0.03}

    observer.observe(denied(), timings)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"deployguard.admission", "deployguard.classify", "deployguard.facts.images",
                          "deployguard.facts.windows", "deployguard.evaluate"}
    root = spans["deployguard.admission"]
    for span in spans.values():
        assert span.attributes is not None and span.attributes["deployguard.decision_id"] == "abc123"
        assert span.context.trace_id == root.context.trace_id
        if span is not root:
            assert span.parent is not None and span.parent.span_id == root.context.span_id
            assert root.start_time <= span.start_time <= span.end_time <= root.end_time
