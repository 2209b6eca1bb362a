"""OpenTelemetry spans for each decision: the request and each phase. Off by default.

Spans are built after the answer from the reviewer's per-phase timings (fact
gatherers run concurrently, so they share a start), which keeps tracing out of the
request path entirely. Needs the optional ``tracing`` extra
(``pip install 'deployguard[tracing]'``); spans go to an OTLP/HTTP endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


class TracingObserver:
    """A decision observer that turns a record and its timings into a span tree."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def observe(self, record: Mapping[str, Any], timings: Mapping[str, float]) -> None:
        end = time.time_ns()
        total = int(timings.get("total", 0.0) * 1e9)
        start = end - total
        attributes = {
            "deployguard.decision_id": str(record.get("decision_id")),
            "deployguard.outcome": str(record.get("outcome")),
            "deployguard.policy_revision": str(record.get("policy_revision") or ""),
            "k8s.namespace.name": str(record.get("namespace") or ""),
            "k8s.object.kind": str(record.get("kind") or ""),
            "k8s.object.name": str(record.get("name") or ""),
            "k8s.admission.uid": str(record.get("uid") or ""),
            "k8s.admission.operation": str(record.get("operation") or ""),
        }
        root = self._tracer.start_span("deployguard.admission", start_time=start, attributes=attributes)
        from opentelemetry import trace

        context = trace.set_span_in_context(root)
        classify = int(timings.get("classify", 0.0) * 1e9)
        phases: list[tuple[str, int, int]] = []
        if "classify" in timings:
            phases.append(("classify", start, start + classify))
        for phase, seconds in timings.items():
            if phase.startswith("facts."):
                phases.append((phase, start + classify, start + classify + int(seconds * 1e9)))
        if "evaluate" in timings:
            phases.append(("evaluate", end - int(timings["evaluate"] * 1e9), end))
        for name, begin, finish in phases:
            span = self._tracer.start_span(
                f"deployguard.{name}",
                context=context,
                start_time=begin,
                attributes={"deployguard.decision_id": attributes["deployguard.decision_id"]},
            )
            span.end(end_time=min(finish, end))
        root.end(end_time=end)


def otlp_tracer(endpoint: str, service_name: str) -> tuple[Any, Any]:
    """(tracer, provider) exporting to ``endpoint`` over OTLP/HTTP; shut the provider down at exit."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        from webhook.errors import ConfigError

        raise ConfigError(
            f"observability.tracing_otlp_endpoint is set but OpenTelemetry is not installed ({exc}); "
            "install deployguard[tracing]"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider.get_tracer("deployguard"), provider
