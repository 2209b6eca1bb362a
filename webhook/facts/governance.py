"""The change-governance gatherers (change, budgets, break_glass, rollback), built from settings."""

from __future__ import annotations

from webhook.committers import DecisionCommitter
from webhook.config import Settings
from webhook.facts import FactGatherer
from webhook.facts.break_glass import BreakGlassGatherer, load_public_keys
from webhook.facts.budgets import BudgetGatherer
from webhook.facts.change import ChangeGatherer
from webhook.facts.rollback import RollbackGatherer
from webhook.governance.break_glass_commit import BreakGlassCommitter, BreakGlassLedger, LedgerSweep
from webhook.governance.namespace_labels import NamespaceLabels
from webhook.governance.slo import load_slos
from webhook.kube_api import make_kube_api
from webhook.workloads import WorkloadKinds


def governance_gatherers(settings: Settings) -> list[FactGatherer]:
    """``change`` always; ``budgets`` with Prometheus and SLOs; rollback and break-glass with the Kubernetes API."""
    kube = make_kube_api(settings.kube_api.kubeconfig, settings.kube_api.timeout_seconds)
    namespaces = NamespaceLabels(kube, ttl_seconds=settings.change.namespace_labels_ttl_seconds) if kube else None
    kinds = WorkloadKinds.with_custom(settings.admission.custom_kinds)
    gatherers: list[FactGatherer] = [ChangeGatherer(settings.change, kinds, namespaces=namespaces)]
    budgets = settings.budgets
    if budgets.prometheus_url and budgets.slo_file is not None:
        gatherers.append(BudgetGatherer.from_settings(budgets, load_slos(budgets.slo_file)))
    if kube is not None:
        gatherers.append(RollbackGatherer(kube))
    gatherers.append(BreakGlassGatherer(settings.break_glass, load_public_keys(settings.break_glass), kube))
    return gatherers


def governance_committers(settings: Settings) -> list[DecisionCommitter]:
    """The break-glass committer: records a used token after an allowed decision (single use)."""
    kube = make_kube_api(settings.kube_api.kubeconfig, settings.kube_api.timeout_seconds)
    bg = settings.break_glass
    ledger = BreakGlassLedger(kube, bg.state_namespace) if kube is not None else None
    sweep = LedgerSweep(bg.ledger_sweep_interval_seconds, bg.ledger_keep_after_expiry_seconds, bg.max_ttl_seconds)
    return [BreakGlassCommitter(ledger, sweep)]
