"""The metric buffer must expose exactly what direct prometheus-client updates would."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from webhook.observe.metric_buffer import MetricBuffer
from webhook.observe.metrics import LATENCY_BUCKETS

# on a bound, between bounds, below the first, past the last, zero, negative and infinite
VALUES = [0.001, 0.0011, 0.0025, 0.3, 0.0, -1.0, 10.0, 11.0, float("inf"), 0.0049999, 0.005, 2.5, 1e-9]


def _pair(name: str) -> tuple[CollectorRegistry, Histogram, Counter]:
    registry = CollectorRegistry()
    histogram = Histogram(f"{name}_seconds", "h", ["phase"], buckets=LATENCY_BUCKETS, registry=registry)
    counter = Counter(f"{name}_total", "c", ["result"], registry=registry)
    return registry, histogram, counter


def _exposition(registry: CollectorRegistry, name: str) -> str:
    lines = generate_latest(registry).decode().replace(name, "m").splitlines()
    return "\n".join(line for line in lines if "_created" not in line)


def test_buffered_updates_render_as_direct_ones() -> None:
    direct, direct_histogram, direct_counter = _pair("direct")
    buffered, buffered_histogram, buffered_counter = _pair("buffered")
    buffer = MetricBuffer()
    for phase in ("parse", "evaluate"):
        for value in VALUES:
            direct_histogram.labels(phase).observe(value)
            buffer.observe(buffered_histogram.labels(phase), value)
    for result, amount in (("hit", 1.0), ("hit", 2.5), ("miss", 1.0)):
        direct_counter.labels(result).inc(amount)
        buffer.inc(buffered_counter.labels(result), amount)
    buffer.flush()
    assert _exposition(buffered, "buffered") == _exposition(direct, "direct")
    assert 'm_seconds_bucket{le="0.001",phase="parse"} 4.0' in _exposition(direct, "direct")


def test_nothing_shows_before_a_flush_and_a_second_flush_adds_nothing() -> None:
    _, histogram, counter = _pair("flushes")
    buffer = MetricBuffer()
    buffer.inc(counter.labels("hit"))
    buffer.observe(histogram.labels("parse"), 0.002)
    assert counter.labels("hit")._value.get() == 0
    buffer.flush()
    buffer.flush()
    buffer.inc(counter.labels("hit"))
    buffer.flush()
    assert counter.labels("hit")._value.get() == 2
    samples = {s.name: s.value for s in histogram.collect()[0].samples if s.labels.get("le") in (None, "0.0025")}
    assert samples["flushes_seconds_count"] == 1 and samples["flushes_seconds_sum"] == 0.002
    assert samples["flushes_seconds_bucket"] == 1


def test_in_multiprocess_mode_a_flush_reaches_the_shared_files(tmp_path: object) -> None:
    """The reason the buffer exists: the workers' mmap files, read by any worker's /metrics."""
    program = textwrap.dedent(
        """
        import os, sys
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
        from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
        from webhook.observe.metric_buffer import MetricBuffer
        histogram = Histogram("mp_seconds", "h", buckets=(0.01, 1.0))
        buffer = MetricBuffer()
        for value in (0.001, 0.5, 0.5, 3.0):
            buffer.observe(histogram, value)
        def scrape():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=sys.argv[1])
            return generate_latest(registry).decode()
        before = scrape()
        buffer.flush()
        print("mp_seconds_count 0.0" in before, scrape())
        """
    )
    out = subprocess.run([sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True ")  # nothing written before the flush
    assert 'mp_seconds_bucket{le="1.0"} 3.0' in out.stdout
    assert 'mp_seconds_bucket{le="+Inf"} 4.0' in out.stdout
    assert "mp_seconds_count 4.0" in out.stdout and "mp_seconds_sum 4.00" in out.stdout
