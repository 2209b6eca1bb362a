"""The counters fact gatherers keep about their I/O: labels, bounds and what counts as an error."""

from __future__ import annotations

import pytest

from tests.counters import CounterDeltas
from webhook.observe.io_counters import OTHER_REGISTRY, CacheCounter, HostLabels, RegistryRequests
from webhook.trust.registry import round_trip_ok
from webhook.trust.signatures import AuthorityResult


@pytest.mark.parametrize(
    ("status", "ok"),
    [(200, True), (307, True), (401, True), (403, True), (404, True), (429, False), (500, False), (503, False)],
)
def test_only_rate_limits_and_server_errors_are_failed_round_trips(status: int, ok: bool) -> None:
    assert round_trip_ok(status) is ok


def test_configured_hosts_keep_their_label_and_other_hosts_are_bounded() -> None:
    label = HostLabels(["registry.example:5000"], max_hosts=2)
    assert [label(h) for h in ("a.example", "b.example", "c.example", "a.example")] == [
        "a.example",
        "b.example",
        OTHER_REGISTRY,
        "a.example",
    ]
    assert label("registry.example:5000") == "registry.example:5000"  # configured: never "other"


def test_an_unsigned_image_is_neither_verified_nor_a_failed_check() -> None:
    assert AuthorityResult("a", True).outcome == "verified"
    assert AuthorityResult("a", False, "no cosign signature found", unsigned=True).outcome == "unsigned"
    assert AuthorityResult("a", False, "no signature verifies with this key (1 found)").outcome == "failed"
    # The flag is for the counter: verdicts compare (and are cached) as before.
    assert AuthorityResult("a", False, "x", unsigned=True) == AuthorityResult("a", False, "x")


def test_cache_lookups_and_round_trips_are_counted_with_their_labels() -> None:
    deltas = CounterDeltas()
    cache = CacheCounter("unit_test")
    cache(True)
    cache(False)
    cache(False)
    assert deltas("deployguard_cache_requests_total", cache="unit_test", result="hit") == 1
    assert deltas("deployguard_cache_requests_total", cache="unit_test", result="miss") == 2

    requests = RegistryRequests(["unit.example"], max_hosts=0)
    requests("unit.example", "resolve", ok=True)
    requests("unit.example", "signature", ok=False)
    requests("elsewhere.example", "token", ok=True)
    name = "deployguard_registry_requests_total"
    assert deltas(name, registry="unit.example", operation="resolve", result="ok") == 1
    assert deltas(name, registry="unit.example", operation="signature", result="error") == 1
    assert deltas(name, registry=OTHER_REGISTRY, operation="token", result="ok") == 1
    assert deltas("deployguard_upstream_errors_total", upstream="registry") == 1  # the failed one only
