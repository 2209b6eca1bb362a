"""Which fact gatherers run, built once from settings at start-up.

Each capability adds its gatherer here (one line) and its settings section in
``webhook/config.py``; the reviewer only sees the ``FactGatherer`` protocol.
"""

from __future__ import annotations

from webhook.committers import DecisionCommitter
from webhook.config import Settings
from webhook.facts import FactGatherer


def build_gatherers(settings: Settings) -> list[FactGatherer]:
    """The gatherers configured for this process (order does not matter: they run concurrently)."""
    gatherers: list[FactGatherer] = []
    if settings.images.enabled:
        gatherers.append(image_facts(settings))
    from webhook.facts.governance import governance_gatherers

    gatherers.extend(governance_gatherers(settings))
    from webhook.facts.windows import build_windows_gatherer

    gatherers.append(build_windows_gatherer(settings))
    return gatherers


def build_committers(settings: Settings) -> list[DecisionCommitter]:
    """What records an allowed decision's side effects (break-glass single use) before it is answered."""
    from webhook.facts.governance import governance_committers

    return governance_committers(settings)


def image_facts(settings: Settings) -> FactGatherer:
    """The images gatherer, with a budget that ends before the facts' share of the deadline."""
    from webhook.facts.images import ImageFacts
    from webhook.kube_api import make_kube_api
    from webhook.trust.pull_secrets import PullSecretCredentials

    deadline = settings.admission.deadline_seconds
    kube = make_kube_api(settings.kube_api.kubeconfig, settings.kube_api.timeout_seconds)
    pull_secrets = None
    if settings.images.pull_secrets and kube is not None:
        pull_secrets = PullSecretCredentials(kube, ttl_seconds=settings.images.pull_secret_cache_ttl_seconds)
    budget = max(deadline - min(1.0, deadline / 4) - 0.25, 0.1)
    return ImageFacts(settings.images, budget_seconds=budget, pull_secrets=pull_secrets)
