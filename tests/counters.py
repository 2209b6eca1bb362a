"""How much deployguard's counters moved in this process since a point in a test.

Other tests in the same process move the same counters, so tests compare before and
after. Increments wait in ``PENDING`` until a flush (as they do in the server between
its flushes); every read here flushes first.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from webhook.observe.metric_buffer import PENDING

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples() -> Samples:
    """Every sample of deployguard's metrics now, after a flush."""
    PENDING.flush()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith("deployguard_")
        for sample in family.samples
    }


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that have ``labels`` (and any value of the others)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


class CounterDeltas:
    """``deltas(name, **labels)``: the increase since construction, summed over the labels not given."""

    def __init__(self) -> None:
        self._before = samples()

    def __call__(self, name: str, **labels: str) -> float:
        return total(samples(), name, **labels) - total(self._before, name, **labels)
