"""Wire the decision observers (metrics, Events, traces) from settings, at start-up."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from webhook.config import Settings
from webhook.engines import PolicyEngine
from webhook.observe.events import EventRecorder, KubernetesEventSink
from webhook.observe.metric_buffer import PENDING
from webhook.observe.metrics import MetricsEndpoint, MetricsObserver, PolicyRevisionGauge, certificate_gauge
from webhook.observe.observers import DecisionObserver
from webhook.observe.tracing import TracingObserver, otlp_tracer
from webhook.workloads import WorkloadKinds

log = logging.getLogger("deployguard.observability")


@dataclass
class Observability:
    """What ``serve`` adds: observers for the reviewer, the /metrics endpoint, background work."""

    observers: list[DecisionObserver] = field(default_factory=list)
    metrics: MetricsEndpoint | None = None
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)


def kube_client_configured(settings: Settings) -> bool:
    return settings.kube_api.kubeconfig is not None or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


async def flush_metrics(interval_seconds: float = 1.0) -> None:
    """Hand buffered decision metrics to prometheus-client, so a sibling worker's scrape sees them."""
    while True:
        await asyncio.sleep(interval_seconds)
        PENDING.flush()


def build_observability(settings: Settings, engine: PolicyEngine, last_error: Callable[[], str]) -> Observability:
    cfg = settings.observability
    result = Observability()
    if cfg.metrics_enabled:
        kinds = WorkloadKinds.with_custom(settings.admission.custom_kinds).template_paths
        result.observers.append(MetricsObserver({kind for _, kind in kinds}))
        result.metrics = MetricsEndpoint(
            (
                PolicyRevisionGauge(lambda: engine.revision, engine.name, last_error),
                certificate_gauge(settings.server.certfile),
            )
        )
        result.tasks.append(flush_metrics)
        result.closers.append(PENDING.flush)
    if cfg.events_enabled and kube_client_configured(settings):
        sink = KubernetesEventSink(settings.kube_api.kubeconfig, settings.kube_api.timeout_seconds)
        recorder = EventRecorder(
            sink, min_interval_seconds=cfg.events_min_interval_seconds, queue_size=cfg.events_queue_size
        )
        result.observers.append(recorder)
        result.tasks.append(recorder.run)
        log.info("Kubernetes Events on for denials and warnings")
    if cfg.tracing_otlp_endpoint:
        tracer, provider = otlp_tracer(cfg.tracing_otlp_endpoint, cfg.tracing_service_name)
        result.observers.append(TracingObserver(tracer))
        result.closers.append(provider.shutdown)
        log.info("tracing to %s", cfg.tracing_otlp_endpoint)
    return result
